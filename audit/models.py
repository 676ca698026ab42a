import re

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from vulhub.lib.tenancy import TenantQuerySet

# How an audit row's action reads in a sentence ("ada@example.edu changed …"); others read as written.
ACTION_WORDS = {
    "create": "added",
    "update": "changed",
    "delete": "deleted",
    "login": "logged in as",
    "logout": "logged out as",
    "login_failed": "failed to log in as",
    "revoke": "revoked",
    "flag_attempt_refused": "was refused a flag attempt at",
}


def type_words(object_type: str) -> str:
    """ "challenges.project" as its model names itself ("challenge"); an unknown type as written."""
    if not object_type:
        return ""
    try:
        return str(apps.get_model(object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        return object_type


class AuditLog(models.Model):
    """Who changed what, when and from where. Append-only.

    Rows outlive what they describe: tenant and actor are kept as bare ids (no
    foreign key constraint, nothing cascades onto them) and the actor's e-mail is
    copied into actor_text.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the (tenant, ...) indexes below serve tenant lookups
        null=True,
        blank=True,
        related_name="+",
    )
    # DO_NOTHING: deleting a user must not rewrite the log; the id stays as it was.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_text = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_text = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Tamper evidence, filled in by the database (trigger audit_logs_chain): one hash
    # chain per tenant (tenant-less rows form chain 0), writers serialised on its head.
    chain_seq = models.BigIntegerField(null=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    row_hash = models.CharField(max_length=64, blank=True, editable=False)
    recorded = models.BooleanField(
        null=True,
        editable=False,
        help_text="Written by the recorder (audit_record()); false: inserted some other way; "
        "empty: from before the mark existed.",
    )
    # How row_hash is computed (audit_logs_row_hash, migration audit 0007): 1 for rows
    # written before version 2 existed, 2 for every row since.
    hash_version = models.PositiveSmallIntegerField(db_default=2, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "audit_logs"
        verbose_name = "audit record"
        verbose_name_plural = "audit log"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Coalesce("tenant_id", models.Value(0)), "chain_seq", name="uniq_audit_logs_chain_seq"
            ),
            models.CheckConstraint(condition=models.Q(hash_version__in=[1, 2]), name="audit_logs_hash_version_known"),
        ]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="idx_audit_logs_tenant_created"),
            models.Index(fields=["object_type", "object_id"], name="idx_audit_logs_object"),
        ]

    def __str__(self) -> str:
        """ "ada@example.edu changed challenge “SQL Injection 101” (2025-03-01 14:02 UTC)"."""
        who = self.actor_text or "VulHub"
        did = ACTION_WORDS.get(self.action, self.action.replace("_", " "))
        what = " ".join(
            part for part in (type_words(self.object_type), f"“{self.object_text}”" * bool(self.object_text)) if part
        )
        when = f"{self.created_at:%Y-%m-%d %H:%M %Z}" if self.created_at else ""
        return " ".join(part for part in (who, did, what, f"({when})" if when else "") if part)


class AuditChainHead(models.Model):
    """The newest link of each audit chain: what the next row chains onto.

    Written only by the audit_logs insert trigger; its row lock serialises the
    writers of one chain, and `verify_audit` checks each chain ends where its head says.
    """

    chain_key = models.BigIntegerField(primary_key=True, help_text="Tenant id; 0 for rows without a tenant.")
    last_seq = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_chain_heads"

    def __str__(self) -> str:
        return f"chain {self.chain_key} at {self.last_seq}"


class EventStoreQuerySet(TenantQuerySet):
    def after(self, position: int):
        """Events after `position`, in order: what a reader tailing the store asks for next.

        Safe to poll: positions become visible in order (see EventStore), so no
        event can later appear below a position already read.
        """
        return self.filter(position__gt=position).order_by("position")


class EventStore(models.Model):
    """Domain events in commit order, to replay what happened. Append-only.

    `position` is assigned by the insert trigger under a lock held until commit, so
    positions become visible in order: a reader tailing `position > last_seen` never
    skips an event that commits later with a smaller position.
    """

    position = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the (tenant, ...) indexes below serve tenant lookups
        null=True,
        blank=True,
        related_name="+",
    )
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    objects = EventStoreQuerySet.as_manager()

    class Meta:
        db_table = "event_store"
        verbose_name = "event"
        verbose_name_plural = "events"
        ordering = ["position"]
        constraints = [
            # Optimistic concurrency: two writers of the same version cannot both commit.
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "version"], name="uniq_event_store_aggregate_version"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "position"], name="idx_event_store_tenant_pos"),
            models.Index(fields=["event_type", "position"], name="idx_event_store_type_pos"),
        ]

    def __str__(self) -> str:
        """ "Submission graded: submission 12, version 2 (event 1234)"."""
        happened = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", self.event_type).capitalize()
        of = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", self.aggregate_type).lower()
        return f"{happened}: {of} {self.aggregate_id}, version {self.version} (event {self.position})"
