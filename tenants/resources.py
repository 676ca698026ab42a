"""Roster import and export (django-import-export).

A class list comes in as CSV with e-mail, first name, last name and role. The import
runs as a dry run first (the preview, with errors per row); nothing is written while
any row is wrong. New users are created through the same service as everywhere
(audit row, UserRegistered event) and get a welcome e-mail with a set-password link.
Exports are safe to open in a spreadsheet (vulhub.lib.exports).
"""

from import_export import fields, resources
from import_export.widgets import CharWidget

from audit.api import in_bulk
from vulhub.lib.exports import FormulaSafeExportMixin

from .models import User
from .services import user_register
from .welcome import send_welcome_on_commit

ROLES = {role.value for role in User.Role}


class _Discard(Exception):
    def __init__(self, result):
        self.result = result


class RoleWidget(CharWidget):
    def clean(self, value, row=None, **kwargs):
        role = str(value or "").strip().upper() or User.Role.STUDENT
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(sorted(ROLES))} (got {value!r})")
        return role


class RosterResource(resources.ModelResource):
    email = fields.Field(attribute="email", column_name="email")
    first_name = fields.Field(attribute="first_name", column_name="first_name")
    last_name = fields.Field(attribute="last_name", column_name="last_name")
    role = fields.Field(attribute="role", column_name="role", widget=RoleWidget())

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role")
        import_id_fields = ("email",)
        skip_unchanged = True
        report_skipped = True
        use_transactions = True
        clean_model_instances = True

    def __init__(self, *, tenant=None, actor=None, request=None, **kwargs):
        super().__init__(**kwargs)
        self.tenant, self.actor, self.request = tenant, actor, request
        self.welcomed: list[User] = []

    def get_queryset(self):
        return User.objects.for_tenant(self.tenant)

    def import_data(self, dataset, dry_run=False, **kwargs):
        """The real import records its audit rows and events in bulk (one write for the class)."""
        if dry_run:
            return super().import_data(dataset, dry_run=True, **kwargs)
        try:
            with in_bulk():
                result = super().import_data(dataset, dry_run=False, **kwargs)
                if result.has_errors() or result.has_validation_errors():
                    raise _Discard(result)  # leave the block by rolling back: no records, no mail
                return result
        except _Discard as discard:
            return discard.result

    def get_instance(self, instance_loader, row):
        email = str(row.get("email") or "").strip()
        return self.get_queryset().with_email(email).first() if email else None

    def import_instance(self, instance, row, **kwargs):
        # Before the fields, so a row with a bad field is still checked as this tenant's.
        instance.tenant = self.tenant
        if instance.pk is None:
            instance.set_unusable_password()  # they choose one from the welcome e-mail
        super().import_instance(instance, row, **kwargs)
        instance.email = (instance.email or "").strip()

    def do_instance_save(self, instance, is_create):
        if not is_create:
            instance.save()
            return
        user = user_register(
            tenant=self.tenant,
            email=instance.email,
            password=None,
            first_name=instance.first_name,
            last_name=instance.last_name,
            role=instance.role,
            actor=self.actor,
        )
        instance.pk = user.pk
        self.welcomed.append(user)

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        for user in self.welcomed:
            send_welcome_on_commit(self.request, user)


class UserExportResource(FormulaSafeExportMixin, resources.ModelResource):
    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role", "is_active", "date_joined", "last_login")
        export_order = fields
