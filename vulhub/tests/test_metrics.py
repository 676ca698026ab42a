"""/metrics: only for a monitor, and what it counts (vulhub.monitoring, vulhub.lib.metrics).

The counters are read back from the page itself, as Prometheus reads them: a test takes
the value before and after, since counters are process-wide and only go up.
"""

import datetime
import ipaddress
import threading
import time

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit import api as audit
from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Submission
from tenants.factories import StudentFactory, TenantFactory
from vulhub import checks, monitoring

TOKEN = "a-prometheus-token-of-at-least-32-characters"
FLAG = "FLAG{counted}"


@pytest.fixture(autouse=True)
def _metrics_on(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    monitoring.forget_scrape_values()


def scrape(**headers) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, (label, value), ...): value}."""
    response = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers).get("/metrics")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


# --- who may read it -----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_the_token_on_any_host():
    for host in ("web:8000", "10.1.2.3", "not-a-tenant.example"):
        response = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics")
        assert response.status_code == 200
        assert b"django_http_requests_total_by_view_transport_method_total" in response.content
        assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    ["", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "],
)
def test_it_is_a_404_like_any_unknown_page_without_the_token(tenant, authorization):
    response = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=authorization).get("/metrics")
    unknown = Client(HTTP_HOST=tenant.domain).get("/no-such-page")

    assert response.status_code == 404 == unknown.status_code
    assert b"vulhub_" not in response.content
    assert b"django_http" not in response.content


@pytest.mark.django_db
def test_an_empty_token_setting_opens_nothing(tenant, settings):
    settings.METRICS_TOKEN = ""
    for authorization in ("Bearer ", "Bearer", ""):
        response = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=authorization).get("/metrics")
        assert response.status_code == 404


@pytest.mark.django_db
def test_an_allowed_network_reads_it_without_the_token(tenant, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    inside = Client(HTTP_HOST="web:8000", REMOTE_ADDR="10.20.3.4").get("/metrics")
    outside = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="10.21.0.1").get("/metrics")

    assert inside.status_code == 200
    assert outside.status_code == 404


@pytest.mark.django_db
def test_a_forwarded_address_counts_only_behind_a_proxy_of_ours(tenant, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    settings.BEHIND_PROXY = False
    spoofed = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.20.3.4")
    assert spoofed.get("/metrics").status_code == 404

    # behind our proxy (on the allowed network), a visitor from outside is still outside
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = 1
    through_proxy = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="10.20.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert through_proxy.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_a_forwarded_address_that_is_no_address_never_falls_back_to_the_proxys(tenant, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/24")]
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = 1
    for forwarded in ("not-an-ip", "10.0.0.9, garbage"):
        response = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded).get(
            "/metrics"
        )
        assert response.status_code == 404, forwarded
    # Prometheus scraping the node directly, past the proxy: no header, its own address
    assert Client(HTTP_HOST="web:8000", REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 200


@pytest.mark.django_db  # the autouse fixture clears the cache: the database's, embedded
def test_the_compose_trial_token_is_flagged_by_check_deploy(settings):
    settings.METRICS_TOKEN = "docker-compose-local-only-metrics-8e1f4a7c2b9d5e3f6a0c"
    assert [w.id for w in checks.check_metrics_token(None)] == ["vulhub.W020"]
    settings.METRICS_TOKEN = TOKEN
    assert checks.check_metrics_token(None) == []


@pytest.mark.django_db
def test_metrics_off_is_a_404_even_with_the_token(tenant, settings):
    settings.METRICS_ENABLED = False
    response = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics")
    assert response.status_code == 404


@pytest.mark.django_db
def test_only_get_and_head_read_it(tenant):
    client = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", enforce_csrf_checks=True)
    assert client.head("/metrics").status_code == 200
    assert client.post("/metrics").status_code in (403, 404, 405)
    assert b"vulhub_" not in client.post("/metrics").content


# --- labels stay bounded --------------------------------------------------------------------


@pytest.mark.django_db
def test_requests_are_labelled_by_view_never_by_path(tenant):
    client = Client(HTTP_HOST=tenant.domain)
    for n in range(3):
        client.get(f"/no-such-page-{n}/")
        client.get(f"/students/{900000 + n}/")
    samples = scrape()

    labels = {dict(key[1:]).get("view") for key in samples if key[0].startswith("django_http_")}
    assert "student-profile" in labels
    assert "<unnamed view>" in labels
    assert not any(label and ("no-such-page" in label or "9000" in label) for label in labels)


@pytest.mark.django_db
def test_an_unknown_method_is_one_label(tenant):
    client = Client(HTTP_HOST=tenant.domain)
    for method in ("FOO", "BAR"):
        client.generic(method, "/")
    methods = {dict(key[1:]).get("method") for key in scrape() if key[0].startswith("django_http_requests_total")}
    assert "<invalid method>" in methods
    assert not methods & {"FOO", "BAR"}


# --- what classes do, counted once committed -------------------------------------------------


@pytest.mark.django_db
def test_flags_are_counted_by_outcome_after_commit(tenant, student, django_capture_on_commit_callbacks):
    project = ProjectFactory(tenant=tenant, flag=FLAG)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_create(user=student, project=project, flag="FLAG{nope}")
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_create(user=student, project=project, flag=FLAG)
    after = scrape()

    for outcome in ("wrong", "correct"):
        delta = value(after, "vulhub_submissions_total", kind="flag", outcome=outcome) - value(
            before, "vulhub_submissions_total", kind="flag", outcome=outcome
        )
        assert delta == 1, outcome


@pytest.mark.django_db
def test_a_change_that_rolls_back_is_not_counted(tenant, student, django_capture_on_commit_callbacks):
    project = ProjectFactory(tenant=tenant, flag=FLAG)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.submission_create(user=student, project=project, flag=FLAG)
    # the test's transaction never commits: nothing is counted until a commit runs the callbacks
    assert callbacks
    after = scrape()
    assert value(after, "vulhub_submissions_total", kind="flag", outcome="correct") == value(
        before, "vulhub_submissions_total", kind="flag", outcome="correct"
    )


@pytest.mark.django_db
def test_writeups_gradings_and_badges_are_counted(tenant, student, instructor, django_capture_on_commit_callbacks):
    project = ProjectFactory(tenant=tenant)
    badge = BadgeFactory(tenant=tenant)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(user=student, project=project, writeup="I read the source.")
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_grade(submission=submission, status="REJECTED", score=10, grader=instructor)
    with django_capture_on_commit_callbacks(execute=True):
        services.badge_award(badge=badge, user=student, actor=instructor)
    after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("vulhub_submissions_total", kind="writeup", outcome="pending") == 1
    assert delta("vulhub_gradings_total", decision="rejected") == 1
    assert delta("vulhub_gradings_total", decision="approved") == 0
    assert delta("vulhub_badge_awards_total", how="manual") == 1


@pytest.mark.django_db
def test_flag_limit_refusals_are_counted(tenant, student, settings):
    settings.FLAG_ATTEMPT_LIMIT = 1
    project = ProjectFactory(tenant=tenant, flag=FLAG)
    services.submission_create(user=student, project=project, flag="FLAG{nope}")
    before = scrape()
    with pytest.raises(services.TooManyAttempts):
        services.submission_create(user=student, project=project, flag="FLAG{again}")
    after = scrape()
    assert value(after, "vulhub_flag_limit_refusals_total") - value(before, "vulhub_flag_limit_refusals_total") == 1


@pytest.mark.django_db
def test_login_lockouts_are_counted(tenant, student, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    before = scrape()
    client = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="198.51.100.20")
    statuses = [
        client.post("/accounts/login/", {"username": student.email, "password": "wrong"}).status_code for _ in range(3)
    ]
    after = scrape()
    assert statuses[-1] == 429
    assert value(after, "vulhub_login_lockouts_total") - value(before, "vulhub_login_lockouts_total") == 1


@pytest.mark.django_db
def test_leaderboard_cache_reads_are_counted_as_hits_and_misses(tenant, student, client_for):
    client = client_for(tenant, student)
    before = scrape()
    assert client.get("/leaderboard/").status_code == 200
    assert client.get("/leaderboard/").status_code == 200
    after = scrape()

    def delta(result):
        return value(after, "vulhub_leaderboard_cache_requests_total", result=result) - value(
            before, "vulhub_leaderboard_cache_requests_total", result=result
        )

    assert delta("miss") >= 1
    assert delta("hit") >= 1


@pytest.mark.django_db
def test_a_failed_audit_record_is_counted_and_rolls_back_its_transaction(tenant, student):
    before = scrape()
    with pytest.raises(DatabaseError), transaction.atomic():
        SubmissionFactory(tenant=tenant, user=student, project=ProjectFactory(tenant=tenant))
        # an action longer than its column: the database refuses the record
        audit.record(action="x" * 100, object_type="scoring.submission", tenant_id=tenant.pk, actor=student)
    after = scrape()
    assert value(after, "vulhub_audit_record_failures_total") - value(before, "vulhub_audit_record_failures_total") == 1
    assert not Submission.objects.filter(user=student).exists()


@pytest.mark.django_db
def test_database_and_cache_calls_are_counted(tenant, client_for, student):
    before = scrape()
    client_for(tenant, student).get("/challenges/")
    after = scrape()
    executed = [key for key in after if key[0] == "django_db_execute_total"]
    assert executed
    assert sum(after[key] for key in executed) > sum(before.get(key, 0) for key in executed)
    assert sum(v for k, v in after.items() if k[0] == "django_cache_get_total") > sum(
        v for k, v in before.items() if k[0] == "django_cache_get_total"
    )


@pytest.mark.django_db
def test_failed_statements_are_counted_by_type():
    before = scrape()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    after = scrape()
    errors = [key for key in after if key[0] == "django_db_errors_total" and ("type", "UndefinedTable") in key]
    assert errors
    assert sum(after[key] - before.get(key, 0) for key in errors) == 1


@pytest.mark.django_db
def test_requests_are_timed_by_view(tenant, client_for, student):
    before = scrape()
    client_for(tenant, student).get("/leaderboard/")
    after = scrape()
    key = (
        "django_http_requests_latency_seconds_by_view_method_count",
        ("method", "GET"),
        ("view", "scoring:leaderboard"),
    )
    assert after[key] - before.get(key, 0) == 1
    status = ("django_http_responses_total_by_status_view_method_total",) + tuple(
        sorted({"status": "200", "view": "scoring:leaderboard", "method": "GET"}.items())
    )
    assert after[status] - before.get(status, 0) == 1


# --- read when scraped -----------------------------------------------------------------------


@pytest.mark.django_db
def test_pending_writeups_per_class_and_the_oldest_age(tenant, other_tenant):
    project = ProjectFactory(tenant=tenant)
    other_project = ProjectFactory(tenant=other_tenant)
    two_days_ago = timezone.now() - datetime.timedelta(days=2)
    for _ in range(3):
        SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=project, submitted_at=two_days_ago)
    SubmissionFactory(tenant=other_tenant, user=StudentFactory(tenant=other_tenant), project=other_project)
    graded = SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=project)
    Submission.objects.filter(pk=graded.pk).update(status="REJECTED", score=0)

    samples = scrape()
    assert value(samples, "vulhub_pending_writeups", tenant=tenant.slug) == 3
    assert value(samples, "vulhub_pending_writeups", tenant=other_tenant.slug) == 1
    age = value(samples, "vulhub_pending_writeup_oldest_age_seconds", tenant=tenant.slug)
    assert 2 * 86400 - 60 < age < 2 * 86400 + 600
    assert value(samples, "vulhub_scrape_collect_ok", part="pending_writeups") == 1


@pytest.mark.django_db
def test_classes_past_the_label_limit_are_summed_as_other(settings):
    settings.METRICS_TENANT_LABEL_LIMIT = 2
    tenants = [TenantFactory() for _ in range(4)]
    for waiting, tenant in zip((4, 3, 2, 1), tenants, strict=True):
        project = ProjectFactory(tenant=tenant)
        for _ in range(waiting):
            SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=project)

    samples = scrape()
    named = {dict(key[1:])["tenant"]: v for key, v in samples.items() if key[0] == "vulhub_pending_writeups"}
    # other tests' classes may wait too: the two busiest are ours, the rest is one series
    assert set(named) == {tenants[0].slug, tenants[1].slug, monitoring.OTHER_TENANTS}
    assert named[monitoring.OTHER_TENANTS] >= 3


@pytest.mark.django_db
def test_the_scrape_time_gauges_are_read_once_per_period(tenant, django_assert_num_queries):
    scrape()  # fills the cache
    project = ProjectFactory(tenant=tenant)
    SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=project)
    samples = scrape()
    # still the cached reading: the new write-up shows after METRICS_SCRAPE_CACHE_SECONDS
    assert value(samples, "vulhub_pending_writeups", tenant=tenant.slug) == 0
    monitoring.forget_scrape_values()
    assert value(scrape(), "vulhub_pending_writeups", tenant=tenant.slug) == 1


@pytest.mark.django_db
def test_the_app_role_reads_only_totals_of_other_classes(tenant, other_tenant):
    """vulhub_pending_writeups() gives counts across classes; the rows stay behind row-level security."""
    other_project = ProjectFactory(tenant=other_tenant)
    SubmissionFactory(tenant=other_tenant, user=StudentFactory(tenant=other_tenant), project=other_project)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user)"
        )
        role, bypasses = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM submissions WHERE tenant_id = %s", [other_tenant.pk])
        rows_seen = cursor.fetchone()[0]
        cursor.execute("SELECT pending FROM vulhub_pending_writeups() WHERE tenant = %s", [other_tenant.slug])
        total = cursor.fetchone()[0]
    if not bypasses:  # the app role, as the site runs (CI's servers run; the embedded default too)
        assert rows_seen == 0, role
    assert total == 1


@pytest.mark.django_db
def test_the_newest_backup_is_a_timestamp_where_backups_are_scheduled(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path
    settings.DBSTATS_THRESHOLDS = {**settings.DBSTATS_THRESHOLDS, "backup_age_hours": 26}
    samples = scrape()
    assert value(samples, "vulhub_backup_newest_timestamp_seconds", tool="dump", repo="") == 0
    assert value(samples, "vulhub_backup_listing_ok", tool="dump") == 1


@pytest.mark.django_db
def test_no_backup_gauge_where_none_are_scheduled(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path
    settings.DBSTATS_THRESHOLDS = {**settings.DBSTATS_THRESHOLDS, "backup_age_hours": 0}
    samples = scrape()
    assert not [key for key in samples if key[0].startswith("vulhub_backup_") and ("tool", "dump") in key]


@pytest.mark.django_db(transaction=True)  # the reading thread writes the cache (the database's, embedded)
def test_a_slow_read_is_waited_for_a_while_then_finishes_for_the_next_scrape():
    monitoring.forget_scrape_values()
    release = threading.Event()
    calls = []

    def slow():
        calls.append(1)
        release.wait(10)
        return {"backups": [("dump", "", 1.0)], "backup_listing": [("dump", 1)]}

    key = monitoring.BACKUPS_KEY
    assert monitoring.fresh(key, 300, slow, wait=0.2) is None  # not there yet: the scrape goes on
    assert monitoring.fresh(key, 300, slow, wait=0.2) is None  # still being read: not read twice
    release.set()
    for _ in range(100):
        found = monitoring.fresh(key, 300, slow, wait=0.2)
        if found is not None:
            break
        time.sleep(0.05)
    assert found == {"backups": [("dump", "", 1.0)], "backup_listing": [("dump", 1)]}
    assert len(calls) == 1
    monitoring.forget_scrape_values()
