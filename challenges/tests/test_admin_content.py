"""The admin's challenge form (scoring, time window, prerequisites) and the class's schedule settings.

Bad input is a form error in the admin, nothing saved: a close before the open, a
minimum above the initial value, a dynamic challenge without its values, a prerequisite
cycle (named), a challenge of another class. The class's time zone, event window and
scoreboard freeze are edited on its settings page, and every time is shown in its zone.
"""

import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from audit.api import AuditLog
from challenges.factories import ProjectFactory
from challenges.models import Prerequisite, Project
from scoring.factories import SubmissionFactory
from tenants.models import Tenant

pytestmark = pytest.mark.usefixtures("fast_hashing")

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


@pytest.fixture
def admin_client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


@pytest.fixture
def labs(tenant):
    return {
        slug: ProjectFactory(tenant=tenant, slug=slug, name=name)
        for slug, name in (("alpha", "Alpha Lab"), ("bravo", "Bravo Lab"), ("charlie", "Charlie Lab"))
    }


def url(project=None):
    return f"/admin/challenges/project/{project.pk}/change/" if project else "/admin/challenges/project/add/"


def form_data(client, project=None, **fields):
    """What the change (or add) form posts: the challenge's fields, the inlines' management forms, `fields` on top."""
    page = client.get(url(project))
    assert page.status_code == 200
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
    base = project or Project(name="New Lab", slug="new-lab", category="Web Security", difficulty="BEGINNER")
    data.update(
        {
            "name": base.name,
            "slug": base.slug,
            "category": base.category,
            "difficulty": base.difficulty,
            "description": base.description,
            "scoring": base.scoring,
            "points": str(base.points),
            "decay_function": base.decay_function,
            "new_flag": "",
        }
    )
    for name, value in fields.items():
        if isinstance(value, datetime):  # as the browser's date and time box sends it
            data[name] = f"{timezone.localtime(value):%Y-%m-%dT%H:%M:%S}"
        elif value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def post(client, project=None, **fields):
    return client.post(url(project), form_data(client, project, **fields))


def errors(response) -> dict:
    assert response.status_code == 200, "saved, but it should have been refused"
    return {name: " ".join(messages) for name, messages in response.context["adminform"].form.errors.items()}


def required_by(project):
    return set(Prerequisite.objects.filter(project=project).values_list("required__slug", flat=True))


# --- The form ---------------------------------------------------------------------------------


def test_the_form_is_arranged_in_fieldsets_with_the_formula(admin_client, labs):
    content = admin_client.get(url(labs["alpha"])).content.decode()

    for title in ("Basics", "Answer", "Scoring", "Time window", "Prerequisites"):
        assert f">{title}</h2>" in content
    assert "value = initial + (minimum - initial) / decay² × s²" in content
    assert "value = initial - decay × s" in content


def test_only_the_classs_other_challenges_are_offered_as_prerequisites(admin_client, labs, other_tenant):
    ProjectFactory(tenant=other_tenant, name="Foreign Lab")

    choices = admin_client.get(url(labs["alpha"])).context["adminform"].form.fields["requires"].queryset

    assert sorted(p.name for p in choices) == ["Bravo Lab", "Charlie Lab"]


def test_prerequisites_are_saved_in_the_tenant_and_audited(admin_client, labs, tenant):
    alpha, bravo, charlie = labs.values()

    response = post(admin_client, alpha, requires=[str(bravo.pk), str(charlie.pk)])

    assert response.status_code == 302
    assert required_by(alpha) == {"bravo", "charlie"}
    assert set(Prerequisite.objects.filter(project=alpha).values_list("tenant_id", flat=True)) == {tenant.pk}
    assert AuditLog.objects.filter(object_type="challenges.prerequisite", action="create").count() == 2

    response = post(admin_client, alpha, requires=[str(charlie.pk)])

    assert response.status_code == 302
    assert required_by(alpha) == {"charlie"}
    assert AuditLog.objects.filter(object_type="challenges.prerequisite", action="delete").count() == 1
    assert admin_client.get(url(alpha)).context["adminform"].form.initial["requires"] == [charlie.pk]


def test_a_new_challenge_may_require_others(admin_client, labs):
    response = post(admin_client, requires=[str(labs["alpha"].pk)])

    assert response.status_code == 302
    assert required_by(Project.objects.get(slug="new-lab")) == {"alpha"}


def test_a_two_challenge_cycle_is_refused_and_named(admin_client, labs):
    alpha, bravo, _ = labs.values()
    Prerequisite.objects.create(tenant=bravo.tenant, project=bravo, required=alpha)

    response = post(admin_client, alpha, requires=[str(bravo.pk)], name="Alpha Renamed")

    assert (
        "would make a cycle: Alpha Renamed requires Bravo Lab, which requires Alpha Renamed"
        in (errors(response)["requires"])
    )
    assert required_by(alpha) == set()
    assert Project.objects.get(pk=alpha.pk).name == "Alpha Lab"  # nothing saved


def test_a_longer_cycle_is_refused_and_named(admin_client, labs):
    alpha, bravo, charlie = labs.values()
    Prerequisite.objects.create(tenant=bravo.tenant, project=bravo, required=charlie)
    Prerequisite.objects.create(tenant=charlie.tenant, project=charlie, required=alpha)

    response = post(admin_client, alpha, requires=[str(bravo.pk)])

    assert (
        "Alpha Lab requires Bravo Lab, which requires Charlie Lab, which requires Alpha Lab"
        in errors(response)["requires"]
    )
    assert required_by(alpha) == set()


def test_a_chain_is_not_a_cycle(admin_client, labs):
    alpha, bravo, charlie = labs.values()
    Prerequisite.objects.create(tenant=bravo.tenant, project=bravo, required=charlie)

    assert post(admin_client, alpha, requires=[str(bravo.pk), str(charlie.pk)]).status_code == 302
    assert required_by(alpha) == {"bravo", "charlie"}


def test_a_challenge_cannot_require_itself_nor_another_classs(admin_client, labs, other_tenant):
    alpha = labs["alpha"]
    foreign = ProjectFactory(tenant=other_tenant)

    itself = errors(post(admin_client, alpha, requires=[str(alpha.pk)]))
    abroad = errors(post(admin_client, alpha, requires=[str(foreign.pk)]))

    assert f"Choose other challenges of this class: {alpha.pk} is not one of them." in itself["requires"]
    assert f"{foreign.pk} is not one of them" in abroad["requires"]
    assert not Prerequisite.objects.exists()


def test_a_close_before_the_open_is_refused(admin_client, labs):
    opens = timezone.now() + timedelta(days=2)

    response = post(admin_client, labs["alpha"], opens_at=opens, closes_at=opens - timedelta(hours=1))

    assert errors(response)["closes_at"] == "The close time must come after the open time."
    assert Project.objects.get(pk=labs["alpha"].pk).opens_at is None


def test_a_window_is_saved_and_read_in_the_classs_time_zone(admin_client, labs, tenant):
    tenant.time_zone = "Asia/Tokyo"
    tenant.save()
    data = form_data(admin_client, labs["alpha"])
    data.update(opens_at="2031-03-01T09:00", closes_at="2031-03-02T18:30")

    response = admin_client.post(url(labs["alpha"]), data)

    assert response.status_code == 302
    saved = Project.objects.get(pk=labs["alpha"].pk)
    assert saved.opens_at == datetime(2031, 3, 1, 9, 0, tzinfo=TOKYO)
    assert saved.closes_at == datetime(2031, 3, 2, 18, 30, tzinfo=TOKYO)
    page = admin_client.get(url(labs["alpha"])).content.decode()
    assert 'type="datetime-local" name="opens_at" value="2031-03-01T09:00:00"' in page
    assert 'value="2031-03-02T18:30:00"' in page


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"initial_points": "100", "minimum_points": "200", "decay": "5"}, "minimum_points", "cannot be above"),
        ({"initial_points": "", "minimum_points": "10", "decay": "5"}, "initial_points", "needs this"),
        ({"initial_points": "500", "minimum_points": "100", "decay": ""}, "decay", "needs this"),
        ({"initial_points": "500", "minimum_points": "100", "decay": "0"}, "decay", "1 or more"),
    ],
)
def test_dynamic_scoring_with_bad_values_is_refused(fields, field, message, admin_client, labs):
    response = post(admin_client, labs["alpha"], scoring="DYNAMIC", **fields)

    assert message in errors(response)[field]
    assert Project.objects.get(pk=labs["alpha"].pk).scoring == Project.Scoring.STATIC


def test_a_dynamic_challenge_shows_its_current_value_read_only(admin_client, labs):
    alpha = labs["alpha"]
    dynamic = {"scoring": "DYNAMIC", "initial_points": "500", "minimum_points": "100", "decay": "10"}
    assert post(admin_client, alpha, **dynamic).status_code == 302
    Project.objects.filter(pk=alpha.pk).update(points=437)  # VulHub keeps it as students solve it

    page = admin_client.get(url(alpha))

    assert "437 points: what a full solve earns now" in page.content.decode()
    assert "points" not in page.context["adminform"].form.fields
    assert post(admin_client, alpha, **dynamic, points="5").status_code == 302
    assert Project.objects.get(pk=alpha.pk).points != 5  # not the admin's to set


# --- The class's schedule and time zone --------------------------------------------------------


def settings_data(tenant, **fields):
    data = {"name": tenant.name, "registration_mode": tenant.registration_mode, "time_zone": tenant.time_zone}
    for name, value in fields.items():
        if isinstance(value, tuple):  # (date, time), as the browser's date and time box sends them
            data[name] = "T".join(value)
        else:
            data[name] = value
    return data


def change_settings(client, tenant, **fields):
    return client.post(f"/admin/tenants/tenant/{tenant.pk}/change/", settings_data(tenant, **fields))


def settings_errors(response):
    assert response.status_code == 200
    return {name: " ".join(messages) for name, messages in response.context["adminform"].form.errors.items()}


def test_a_tenant_admin_sets_the_zone_event_and_freeze(tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)

    response = change_settings(
        client,
        tenant,
        time_zone="Europe/Paris",
        event_starts_at=("2031-01-10", "09:00:00"),
        event_ends_at=("2031-01-12", "17:00:00"),
        scoreboard_freeze_at=("2031-01-12", "16:00:00"),
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.time_zone == "Europe/Paris"
    # typed with the new zone: meant in it
    assert tenant.event_starts_at == datetime(2031, 1, 10, 9, 0, tzinfo=PARIS)
    assert tenant.event_ends_at == datetime(2031, 1, 12, 17, 0, tzinfo=PARIS)
    assert tenant.scoreboard_freeze_at == datetime(2031, 1, 12, 16, 0, tzinfo=PARIS)
    page = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert 'value="2031-01-12T17:00:00"' in page  # shown in the zone


def test_emptying_the_freeze_unfreezes(tenant, tenant_admin, client_for):
    tenant.scoreboard_freeze_at = timezone.now()
    tenant.save()

    response = change_settings(client_for(tenant, tenant_admin), tenant, scoreboard_freeze_at="")

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.scoreboard_freeze_at is None


def test_an_unknown_time_zone_is_refused_with_a_clear_message(tenant, tenant_admin, client_for):
    response = change_settings(client_for(tenant, tenant_admin), tenant, time_zone="Mars/Olympus_Mons")

    assert "“Mars/Olympus_Mons” is not a time zone we know" in settings_errors(response)["time_zone"]
    tenant.refresh_from_db()
    assert tenant.time_zone == "UTC"


def test_an_event_that_ends_before_it_starts_is_refused(tenant, tenant_admin, client_for):
    response = change_settings(
        client_for(tenant, tenant_admin),
        tenant,
        event_starts_at=("2031-01-12", "09:00:00"),
        event_ends_at=("2031-01-10", "09:00:00"),
    )

    assert settings_errors(response)["event_ends_at"] == "The event must end after it starts."
    tenant.refresh_from_db()
    assert tenant.event_starts_at is None and tenant.event_ends_at is None


def test_instructors_cannot_change_the_schedule(tenant, instructor, client_for):
    response = change_settings(client_for(tenant, instructor), tenant, scoreboard_freeze_at=("2031-01-01", "09:00:00"))

    assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).scoreboard_freeze_at is None


def test_the_site_shows_times_in_the_classs_zone(tenant, student, client_for):
    tenant.time_zone = "Asia/Tokyo"
    tenant.save()
    project = ProjectFactory(tenant=tenant, slug="essay")
    sent = datetime(2030, 6, 1, 23, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    SubmissionFactory(tenant=tenant, user=student, project=project, submitted_at=sent)

    content = client_for(tenant, student).get("/challenges/essay/").content.decode()

    assert "2 Jun 2030, 08:30" in content  # 23:30 UTC is 08:30 the next day in Tokyo
    assert timezone.get_current_timezone_name() == "UTC"  # put back after the request


def test_an_unknown_zone_in_the_database_falls_back_to_utc(tenant, student, client_for):
    Tenant.objects.filter(pk=tenant.pk).update(time_zone="Nowhere/Atlantis")

    assert client_for(tenant, student).get("/challenges/").status_code == 200
