"""Secrets are never a filter, a sort key or a search term in any admin (vulhub.lib.admin_secrets).

The attack: a lookup in an admin URL is an oracle. `?answer__startswith=FLAG{f` on the
grading queue answered "rows" or "no rows", and an instructor read another student's
flag one character at a time; `?flag_hash__startswith=` probed a challenge's flag hash.
Every registered admin is walked with every secret it can reach, on its model or one
relation away.
"""

import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import RequestFactory

from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import BadgeFactory, SubmissionFactory, UserBadgeFactory
from scoring.models import Submission
from tenants.factories import StudentFactory
from tenants.models import Tenant, User
from vulhub.lib.admin_secrets import SECRET_FIELDS, SecretFieldsAdminMixin, secret_in_path

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{alpha-0nly-s3cret}"
INVITE_CODE = "join-alpha-7731-secret"
QUEUE = "/admin/scoring/submission/"


@pytest.fixture
def secrets_world(tenant, student, instructor, project):
    """Every kind of secret, stored: a flag a student typed, a flag hash, passwords and an invite code.

    The right flag approves the solve, which gives the student a leaderboard row too.
    """
    tenant.settings = {**tenant.settings, "invite_code": INVITE_CODE}
    tenant.registration_mode = Tenant.RegistrationMode.INVITE
    tenant.save()
    flagged = ProjectFactory(tenant=tenant, name="Flagged", slug="flagged", flag=FLAG)
    solve = services.submission_create(user=student, project=flagged, flag=FLAG)
    writeup = SubmissionFactory(tenant=tenant, user=student, project=project, answer="My write-up")
    badge = BadgeFactory(tenant=tenant)
    UserBadgeFactory(tenant=tenant, user=student, badge=badge, awarded_by=instructor)
    return {"solve": solve, "writeup": writeup, "flagged": flagged}


def admin_url(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def secret_paths(model) -> list[str]:
    """The lookup paths to a secret from `model`: its own secret fields, and those one relation away."""
    paths = sorted(SECRET_FIELDS.get(model._meta.label, ()))
    for field in model._meta.get_fields():
        if field.is_relation and field.related_model is not None:
            paths += [
                f"{field.name}__{name}" for name in sorted(SECRET_FIELDS.get(field.related_model._meta.label, ()))
            ]
    return paths


WALK = [(model, path) for model in admin.site._registry for path in secret_paths(model)]


def result_pks(response) -> list:
    return [row.pk for row in response.context["cl"].result_list]


def test_the_walk_covers_every_kind_of_secret():
    """The walk below is no empty loop: each secret is reached directly and across a relation."""
    walked = {(model._meta.label, path) for model, path in WALK}

    assert ("scoring.Submission", "answer") in walked
    assert ("challenges.Project", "flag_hash") in walked
    assert ("challenges.Project", "submissions__answer") in walked
    assert ("scoring.Submission", "user__password") in walked
    assert ("scoring.Submission", "project__flag_hash") in walked
    assert ("tenants.Tenant", "settings") in walked
    assert ("tenants.User", "tenant__settings") in walked
    assert ("audit.AuditLog", "actor__password") in walked
    assert ("auth.Group", "user__password") in walked


@pytest.mark.parametrize(("model", "path"), WALK, ids=[f"{m._meta.label}:{p}" for m, p in WALK])
def test_no_admin_filters_by_a_secret(secrets_world, tenant, tenant_admin, superuser, client_for, model, path):
    """A tenant admin (every permission of a tenant) and a platform superuser get a 4xx, never rows or a 500."""
    for user in (tenant_admin, superuser):
        client = client_for(tenant, user)
        for params in (
            {f"{path}__startswith": "x"},
            {path: "x"},
            {f"{path}__isnull": "False"},
            {"_facets": "1", f"{path}__startswith": "x"},
        ):
            response = client.get(admin_url(model), params)

            assert 400 <= response.status_code < 500, (user.email, params, response.status_code)


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_no_admin_sorts_by_a_secret(secrets_world, tenant, superuser, client_for, model):
    """`?o=<index>` sorts by any column Django finds, header link or not: none of them reads a secret."""
    client = client_for(tenant, superuser)
    columns = len(client.get(admin_url(model), {"o": "0"}).context["cl"].list_display)

    for index in range(-1, columns + 1):
        for order in (str(index), f"-{index}"):
            response = client.get(admin_url(model), {"o": order})

            assert response.status_code == 200
            ordering = response.context["cl"].queryset.query.order_by
            assert not [o for o in ordering if isinstance(o, str) and secret_in_path(model, o.lstrip("-"))]


def stored_secrets(secrets_world, student) -> list[str]:
    """The stored secrets as a search would be typed: the flag, its hash, a password hash, the invite code."""
    student.refresh_from_db()
    secrets_world["flagged"].refresh_from_db()
    return [FLAG, secrets_world["flagged"].flag_hash, student.password, INVITE_CODE]


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_no_admin_searches_a_secret(secrets_world, tenant, student, superuser, client_for, model):
    """A search for a secret's prefix finds what a search for nonsense of its length finds."""
    client = client_for(tenant, superuser)

    for secret in stored_secrets(secrets_world, student):
        prefix = secret[:14]
        found = client.get(admin_url(model), {"q": prefix, "all": ""})
        decoy = client.get(admin_url(model), {"q": "q" * len(prefix), "all": ""})

        assert found.status_code == decoy.status_code == 200
        assert result_pks(found) == result_pks(decoy), (model._meta.label, prefix)


def test_an_instructor_cannot_read_a_students_flag_from_the_grading_queue(
    secrets_world, tenant, instructor, client_for
):
    """The finding, replayed: a prefix that matches and one that does not get the same refusal."""
    client = client_for(tenant, instructor)
    assert secrets_world["solve"].kind == Submission.Kind.FLAG and secrets_world["solve"].answer == FLAG

    for prefix in ("FLAG{a", "FLAG{z"):
        assert client.get(QUEUE, {"answer__startswith": prefix}).status_code == 400
        assert client.get(QUEUE, {"status__exact": "APPROVED", "answer__startswith": prefix}).status_code == 400
        assert client.get(f"{QUEUE}export/", {"answer__startswith": prefix}).status_code == 400
        assert client.get("/admin/challenges/project/", {"submissions__answer__startswith": prefix}).status_code == 400
    assert client.get("/admin/challenges/project/", {"flag_hash__startswith": "sha256$"}).status_code == 400
    assert client.get(QUEUE, {"project__flag_hash__startswith": "sha256$"}).status_code == 400
    assert client.get(QUEUE, {"user__password__startswith": "md5$"}).status_code == 400
    # the search box never looks at answers either
    assert result_pks(client.get(QUEUE, {"q": "FLAG{alpha", "all": ""})) == []


def test_a_tenant_admin_cannot_probe_the_invite_code(secrets_world, tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)

    assert client.get("/admin/tenants/tenant/", {"settings__invite_code__startswith": "join"}).status_code == 400
    assert client.get("/admin/tenants/user/", {"tenant__settings__invite_code": INVITE_CODE}).status_code == 400
    assert client.get("/admin/audit/auditlog/", {"changes__settings__1__invite_code": INVITE_CODE}).status_code == 400


def test_ordinary_filters_sorting_and_search_still_work(secrets_world, tenant, student, instructor, client_for):
    client = client_for(tenant, instructor)
    solve, writeup, flagged = secrets_world["solve"], secrets_world["writeup"], secrets_world["flagged"]

    assert result_pks(client.get(QUEUE, {"status__exact": "PENDING"})) == [writeup.pk]
    assert result_pks(client.get(QUEUE, {"kind__exact": "FLAG"})) == [solve.pk]
    assert result_pks(client.get(QUEUE, {"project__id__exact": flagged.pk})) == [solve.pk]
    assert sorted(result_pks(client.get(QUEUE, {"q": student.email}))) == sorted([solve.pk, writeup.pk])
    Submission.objects.filter(pk=writeup.pk).update(submitted_at=solve.submitted_at - timedelta(hours=1))
    # column 0 is the action checkbox, 1 the time of submission
    assert result_pks(client.get(QUEUE, {"all": "", "o": "1"})) == [writeup.pk, solve.pk]
    assert result_pks(client.get(QUEUE, {"all": "", "o": "-1"})) == [solve.pk, writeup.pk]
    faceted = client.get(QUEUE, {"_facets": "1", "status__exact": "APPROVED"})
    assert faceted.status_code == 200 and result_pks(faceted) == [solve.pk]
    published = client.get("/admin/challenges/project/", {"is_published__exact": "1", "q": "Flagged"})
    assert result_pks(published) == [flagged.pk]


def test_a_tenant_admin_still_filters_the_class_list(secrets_world, tenant, student, tenant_admin, client_for):
    response = client_for(tenant, tenant_admin).get("/admin/tenants/user/", {"role__exact": "STUDENT"})

    assert result_pks(response) == [student.pk]


def test_the_mixin_drops_a_secret_from_an_admins_configuration(rf: RequestFactory, superuser):
    """Should an admin name a secret by mistake, no column, sort, search or filter is made of it."""

    @admin.display(ordering="answer")
    def answer_column(obj):
        return "…"

    class LeakyAdmin(SecretFieldsAdminMixin, admin.ModelAdmin):
        list_display = ["status", "answer", "user__password", answer_column]
        search_fields = ["user__email", "answer", "^project__flag_hash", "=user__password"]
        ordering = ["status", "-answer", "user__password"]
        list_filter = ["status", "answer", ("project__flag_hash", admin.AllValuesFieldListFilter)]

    request = rf.get("/")
    request.user = superuser
    leaky = LeakyAdmin(Submission, admin.AdminSite())

    assert leaky.get_list_display(request) == ["status"]
    assert leaky.get_sortable_by(request) == ["status"]
    assert leaky.get_search_fields(request) == ["user__email"]
    assert leaky.get_ordering(request) == ["status"]
    assert leaky.get_list_filter(request) == ["status"]
    assert not leaky.lookup_allowed("answer__startswith", "FLAG{", request)
    assert not leaky.lookup_allowed("tenant__users__password__startswith", "x", request)
    assert leaky.lookup_allowed("status__exact", "PENDING", request)


def test_no_admin_names_a_secret_in_its_configuration():
    """The mixin's dropping is a safety net: the configuration itself stays clean."""
    for model, model_admin in admin.site._registry.items():
        named = [
            *[c for c in model_admin.list_display if isinstance(c, str)],
            *[s.lstrip("^=@") for s in model_admin.search_fields],
            *[o.lstrip("-") for o in model_admin.ordering or () if isinstance(o, str)],
            *[f if isinstance(f, str) else f[0] for f in model_admin.list_filter if isinstance(f, str | tuple)],
        ]
        assert not [name for name in named if secret_in_path(model, name)], model._meta.label


def test_every_admin_that_reaches_a_secret_refuses_it():
    """A new admin that forgets the mixin (or vulhub.lib.admin's mixins) fails here."""
    unguarded = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if secret_paths(model) and not isinstance(model_admin, SecretFieldsAdminMixin)
    ]

    assert unguarded == []


# Fields whose name looks like a secret, or JSON that could hold anything, and are not one.
NOT_SECRET = {
    "audit.AuditLog.prev_hash": "the audit chain: a digest of public rows",
    "audit.AuditLog.row_hash": "the audit chain",
    "audit.AuditLog.hash_version": "the audit chain: which digest a row uses",
    "audit.AuditChainHead.chain_key": "the audit chain: a tenant id",
    "audit.AuditChainHead.last_hash": "the audit chain",
    "audit.EventStore.payload": "events carry ids, points and grades, never an answer (scoring.records)",
    "audit.EventStore.metadata": "the actor and request of an event",
    "scoring.Badge.rule_params": "a badge's rule",
    "auth.Permission.codename": "a permission's name",
    "axes.AccessLog.session_hash": "a one-way digest of a session key; no admin lookup reverses it",
    "tenants.RateLimitHit.key": "a client address or a keyed digest of an e-mail; not in the admin",
}
LOOKS_SECRET = re.compile(r"password|secret|token|hash|invite|answer|code|key|session_data")


def test_every_field_that_looks_secret_is_reviewed():
    """A new `api_token` or JSON field must be listed in SECRET_FIELDS or, with a reason, in NOT_SECRET."""
    unreviewed = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            label = f"{model._meta.label}.{field.name}"
            looks_secret = LOOKS_SECRET.search(field.name) or field.get_internal_type() == "JSONField"
            if looks_secret and not secret_in_path(model, field.name) and label not in NOT_SECRET:
                unreviewed.append(label)

    assert unreviewed == []


def test_no_default_ordering_sorts_by_a_secret():
    """`?o=` on a foreign key column sorts by the related model's Meta.ordering."""
    for model in apps.get_models():
        assert not [o for o in model._meta.ordering if isinstance(o, str) and secret_in_path(model, o.lstrip("-"))]


def test_secret_in_path_follows_relations_and_stops_at_lookups():
    assert secret_in_path(Submission, "answer__startswith") == "scoring.Submission.answer"
    assert secret_in_path(Submission, "user__password") == "tenants.User.password"
    assert secret_in_path(User, "tenant__projects__flag_hash__isnull") == "challenges.Project.flag_hash"
    assert secret_in_path(Tenant, "settings__invite_code") == "tenants.Tenant.settings"
    assert secret_in_path(Submission, "user__email__startswith") is None
    assert secret_in_path(Submission, "status__exact") is None
    assert secret_in_path(Submission, "pk") is None


def test_a_platform_superuser_gets_no_flag_oracle_either(tenant, other_tenant, superuser, client_for):
    """Even a platform superuser, who sees every tenant, gets no flag oracle."""
    theirs = StudentFactory(tenant=other_tenant)
    flagged = ProjectFactory(tenant=other_tenant, flag=FLAG)
    services.submission_create(user=theirs, project=flagged, flag=FLAG)

    assert client_for(tenant, superuser).get(QUEUE, {"answer__startswith": "FLAG{"}).status_code == 400
