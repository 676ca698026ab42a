"""A tenant admin sets the class's theme, registration and attempt limits."""

import pytest

from tenants.models import Tenant

pytestmark = pytest.mark.usefixtures("fast_hashing")


def change(client, tenant, **data):
    form = {"name": tenant.name, "registration_mode": tenant.registration_mode, **data}
    return client.post(f"/admin/tenants/tenant/{tenant.pk}/change/", form)


def test_settings_are_saved_into_the_tenants_settings(tenant, tenant_admin, client_for):
    response = change(
        client_for(tenant, tenant_admin),
        tenant,
        accent="#1d4ed8",
        logo="https://school.example/logo.png",
        registration_mode="INVITE",
        invite_code="CTF-2026",
        flag_attempt_limit="5",
        flag_attempt_window="30",
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.registration_mode == Tenant.RegistrationMode.INVITE
    assert tenant.settings == {
        "theme": "default",
        "accent": "#1d4ed8",
        "logo": "https://school.example/logo.png",
        "invite_code": "CTF-2026",
        "flag_attempts": {"limit": 5, "window_minutes": 30},
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"accent": "red; background:url(x)"}, "accent"),
        ({"registration_mode": "INVITE"}, "invite_code"),
        ({"flag_attempt_limit": "0"}, "flag_attempt_limit"),
    ],
)
def test_bad_settings_are_refused_with_a_message(data, field, tenant, tenant_admin, client_for):
    response = change(client_for(tenant, tenant_admin), tenant, **data)

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.settings == {"theme": "default"}


def test_a_tenant_admin_cannot_open_another_tenant(tenant, other_tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)

    assert client.get(f"/admin/tenants/tenant/{other_tenant.pk}/change/").status_code == 404
    assert change(client, other_tenant, accent="#000000").status_code == 404
