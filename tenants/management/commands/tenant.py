import re

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants.models import Tenant

# A host name: dot-separated labels of letters, digits and inner hyphens (no port, no scheme).
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def host_name(value: str) -> str:
    host = value.strip().lower()
    if not HOST_NAME.match(host):
        raise CommandError(
            f"{value!r} is not a host name: give one like class.example.edu (letters, digits, hyphens and dots; "
            "no scheme, port or path)."
        )
    return host


def problems(error: ValidationError, tenant: Tenant) -> str:
    """The model's validation errors as one sentence an operator can act on."""
    said = []
    for field, messages in error.message_dict.items():
        for message in messages:
            if "uniq_tenants_domain_ci" in message:
                message = f"another tenant is already served on {tenant.domain}"
            said.append(message if field == "__all__" else f"{field}: {message}")
    return "; ".join(said)


class Command(BaseCommand):
    help = (
        "Create, change and list tenants (schools, companies). Platform work: it runs as the "
        "owner (MIGRATIONS_DATABASE_URL), since the site's role may not create tenants or move them "
        "to another host. Examples: `tenant create --name 'Alpha Academy' --slug alpha --domain "
        "class.alpha.edu`, `tenant set alpha --domain new.alpha.edu`, `tenant set alpha --inactive`, `tenant list`."
    )

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True)
        create = verbs.add_parser("create", help="a new tenant")
        create.add_argument("--name", required=True, help="the name students see")
        create.add_argument("--slug", required=True, help="a short unique name (letters, digits, hyphens)")
        create.add_argument("--domain", required=True, help="the host name it is served on, e.g. class.example.edu")
        change = verbs.add_parser("set", help="change a tenant's host name, name or activation")
        change.add_argument("slug", help="the tenant's slug")
        change.add_argument("--name", help="a new name")
        change.add_argument("--domain", help="a new host name")
        state = change.add_mutually_exclusive_group()
        state.add_argument("--active", dest="active", action="store_true", default=None, help="serve it again")
        state.add_argument("--inactive", dest="active", action="store_false", help="stop serving it (404)")
        verbs.add_parser("list", help="every tenant, with its host and state")

    def handle(self, *args, verb, **options):
        if verb == "list":
            for tenant in Tenant.objects.order_by("slug"):
                state = "active" if tenant.is_active else "inactive"
                self.stdout.write(f"{tenant.slug:<20} {tenant.domain:<40} {state:<9} {tenant.name}")
            return
        with transaction.atomic():
            if verb == "create":
                tenant = Tenant(name=options["name"], slug=options["slug"], domain=host_name(options["domain"]))
            else:
                tenant = Tenant.objects.select_for_update().filter(slug=options["slug"]).first()
                if tenant is None:
                    raise CommandError(f"No tenant with the slug {options['slug']!r} (see `manage.py tenant list`).")
                if options["name"]:
                    tenant.name = options["name"]
                if options["domain"]:
                    tenant.domain = host_name(options["domain"])
                if options["active"] is not None:
                    tenant.is_active = options["active"]
            try:
                tenant.full_clean()
            except ValidationError as exc:
                raise CommandError(f"Not saved: {problems(exc, tenant)}") from None
            tenant.save()
        self.stdout.write(
            self.style.SUCCESS(f"{'Created' if verb == 'create' else 'Saved'} {tenant.slug} on {tenant.domain}.")
        )
