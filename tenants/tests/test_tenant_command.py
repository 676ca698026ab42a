"""`manage.py tenant`: tenants are created and moved by the operator (the site's role may not)."""

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Tenant


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("tenant", *args, stdout=out)
    return out.getvalue()


def test_create_change_and_list(db):
    assert "Created alpha on class.alpha.edu." in run(
        "create", "--name", "Alpha Academy", "--slug", "alpha", "--domain", "Class.Alpha.EDU"
    )
    run("set", "alpha", "--domain", "new.alpha.edu", "--inactive")
    tenant = Tenant.objects.get(slug="alpha")
    assert (tenant.domain, tenant.is_active) == ("new.alpha.edu", False)
    listed = run("list")
    assert "alpha" in listed and "new.alpha.edu" in listed and "inactive" in listed
    run("set", "alpha", "--active", "--name", "Alpha")
    tenant.refresh_from_db()
    assert (tenant.name, tenant.is_active) == ("Alpha", True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "nosuch", "--inactive"], "No tenant with the slug 'nosuch'"),
        (["set", "alpha", "--domain", "https://x.edu/"], "is not a host name"),
        (["set", "alpha", "--domain", "bad_name!"], "is not a host name"),
        (["set", "alpha", "--domain", "beta.localhost"], "another tenant is already served on beta.localhost"),
        (["create", "--name", "A", "--slug", "alpha", "--domain", "a2.localhost"], "slug: Class with this Slug"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(db, args, message):
    run("create", "--name", "Alpha", "--slug", "alpha", "--domain", "alpha.localhost")
    run("create", "--name", "Beta", "--slug", "beta", "--domain", "beta.localhost")
    before = list(Tenant.objects.order_by("pk").values())
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert list(Tenant.objects.order_by("pk").values()) == before
