from challenges.factories import ProjectFactory
from scoring import services
from scoring.summary import class_summary
from tenants.factories import StudentFactory


def test_the_admin_home_shows_the_class_at_a_glance(tenant, instructor, client_for, django_assert_max_num_queries):
    popular = ProjectFactory(tenant=tenant, name="Popular", flag="FLAG{p}")
    for n in range(7):
        ProjectFactory(tenant=tenant, name=f"Quiet {n}")
    for _ in range(3):
        services.submission_create(user=StudentFactory(tenant=tenant), project=popular, flag="FLAG{p}")
    services.submission_create(user=StudentFactory(tenant=tenant), project=ProjectFactory(tenant=tenant), writeup="x")

    with django_assert_max_num_queries(4):  # counts, solves per challenge, recent badges (+ nothing per row)
        summary = class_summary(tenant.pk)

    assert summary["pending"] == 1
    assert summary["this_week"] == 4
    assert summary["most_solved"][0] == {"pk": popular.pk, "name": "Popular", "solves": 3}
    assert all(p["solves"] == 0 for p in summary["least_solved"])
    content = client_for(tenant, instructor).get("/admin/").content.decode()
    assert "Alpha Academy at a glance" in content
    assert "Popular (3)" in content


def test_the_summary_is_the_tenants_own(tenant, other_tenant, instructor, client_for):
    theirs = ProjectFactory(tenant=other_tenant, name="Beta Secret", flag="FLAG{b}")
    services.submission_create(user=StudentFactory(tenant=other_tenant), project=theirs, flag="FLAG{b}")

    content = client_for(tenant, instructor).get("/admin/").content.decode()

    assert "Beta Secret" not in content
