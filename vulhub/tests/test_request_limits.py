"""Oversized requests get a 413 page, never Django's 400 or a traceback; text fields have caps.

DATA_UPLOAD_MAX_MEMORY_SIZE caps a form's text, DATA_UPLOAD_MAX_NUMBER_FIELDS and
DATA_UPLOAD_MAX_NUMBER_FILES its fields and files, REQUEST_BODY_MAX_SIZE a whole body
(files included): vulhub.middleware.RequestTooLargeMiddleware turns each refusal into a 413.
"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from challenges.factories import ProjectFactory
from scoring.models import Submission
from tenants.models import User

MIB = 1024 * 1024


@pytest.fixture
def writeup_project(tenant):
    return ProjectFactory(tenant=tenant, slug="memory-lane", name="Memory Lane")  # no flag: a write-up


@pytest.fixture
def student_client(tenant, student, client_for):
    return client_for(tenant, student)


def assert_friendly_413(response):
    assert response.status_code == 413
    content = response.content.decode()
    assert "That was too much to send" in content
    assert "Nothing was saved." in content
    assert "Traceback" not in content


def test_the_limits_are_set_below_djangos_defaults(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == MIB  # Django's default is 2.5 MB
    assert settings.DATA_UPLOAD_MAX_NUMBER_FIELDS == 1000
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == 10  # Django's default is 100
    assert settings.REQUEST_BODY_MAX_SIZE == 10 * MIB
    assert "vulhub.middleware.RequestTooLargeMiddleware" in settings.MIDDLEWARE


def test_a_5_mb_writeup_is_a_413_with_a_page_and_saves_nothing(student_client, writeup_project):
    response = student_client.post("/challenges/memory-lane/", {"writeup": "A" * (5 * MIB), "link": ""})

    assert_friendly_413(response)
    assert "at most 1.0\xa0MB of text" in response.content.decode()
    assert not Submission.objects.filter(project=writeup_project).exists()


def test_a_refusal_costs_no_database_query(student_client, writeup_project, django_assert_num_queries):
    # refused before the tenant's transaction opens, with a page that needs no database
    with django_assert_num_queries(0):
        response = student_client.post("/challenges/memory-lane/", {"writeup": "A" * (2 * MIB)})

    assert_friendly_413(response)


def test_a_5_mb_urlencoded_form_is_a_413_too(student_client, writeup_project):
    body = "writeup=" + "A" * (5 * MIB)

    response = student_client.post("/challenges/memory-lane/", body, content_type="application/x-www-form-urlencoded")

    assert_friendly_413(response)
    assert not Submission.objects.filter(project=writeup_project).exists()


def test_it_is_a_413_with_debug_on_too(settings, student_client, writeup_project):
    settings.DEBUG = True

    response = student_client.post("/challenges/memory-lane/", {"writeup": "A" * (2 * MIB)})

    assert_friendly_413(response)


def test_a_form_with_too_many_fields_is_a_413(tenant):
    fields = {f"field{n}": "x" for n in range(1001)}

    response = Client(HTTP_HOST=tenant.domain).post("/accounts/login/", fields)

    assert_friendly_413(response)
    assert "more fields than this site accepts (1000 at most)" in response.content.decode()


def test_too_many_files_at_once_is_a_413(tenant, tenant_admin, client_for):
    files = {f"file{n}": SimpleUploadedFile(f"f{n}.csv", b"email\n", content_type="text/csv") for n in range(11)}

    response = client_for(tenant, tenant_admin).post("/admin/tenants/user/import/", {"format": "0", **files})

    assert_friendly_413(response)
    assert "more files at once than this site accepts (10 at most)" in response.content.decode()


def test_a_body_over_request_body_max_size_is_refused_before_it_is_read(settings, tenant, tenant_admin, client_for):
    settings.REQUEST_BODY_MAX_SIZE = 64 * 1024
    upload = SimpleUploadedFile("class.csv", b"email\n" + b"a@alpha.test\n" * 10_000, content_type="text/csv")

    response = client_for(tenant, tenant_admin).post(
        "/admin/tenants/user/import/", {"format": "0", "import_file": upload}
    )

    assert_friendly_413(response)
    assert not User.objects.filter(email="a@alpha.test").exists()


def test_a_file_under_the_body_limit_is_not_held_to_the_text_limit(settings, tenant, tenant_admin, client_for):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024  # text only: files do not count
    rows = "".join(f"s{n}@alpha.test,Stu,{n},student\n" for n in range(400))  # ~12 KB
    upload = SimpleUploadedFile("class.csv", ("email,first_name,last_name,role\n" + rows).encode())

    response = client_for(tenant, tenant_admin).post(
        "/admin/tenants/user/import/", {"format": "0", "import_file": upload}
    )

    assert response.status_code == 200
    assert "confirm_form" in response.context


def test_a_large_json_body_is_a_413(tenant, student_client):
    body = json.dumps({"writeup": "A" * (2 * MIB)})

    response = student_client.post("/profile/", body, content_type="application/json")

    assert_friendly_413(response)


def test_a_writeup_at_its_cap_is_accepted_and_one_over_it_is_a_form_error(student_client, writeup_project):
    # over the cap first: once a write-up waits for grading, the page takes no other
    over = student_client.post("/challenges/memory-lane/", {"writeup": "x" * 20_001, "link": ""})
    at_cap = student_client.post("/challenges/memory-lane/", {"writeup": "é" * 20_000, "link": ""})

    assert at_cap.status_code == 302
    assert over.status_code == 400
    assert "at most 20000 characters" in over.content.decode()
    assert Submission.objects.filter(project=writeup_project).count() == 1


def test_an_ordinary_post_is_untouched(student_client, writeup_project):
    response = student_client.post("/challenges/memory-lane/", {"writeup": "Volatility pslist", "link": ""})

    assert response.status_code == 302
    assert Submission.objects.filter(project=writeup_project).count() == 1


# --- Caps on what people type -------------------------------------------------------------


def registration(**fields):
    return {
        "first_name": "Nia",
        "last_name": "Lee",
        "email": "nia@alpha.test",
        "password": "a-long-enough-pass",
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # a valid address the users table could not hold: once a server error
        ("email", "a" * 60 + "@" + ("b" * 60 + ".") * 4 + "test", "at most 254 characters"),
        ("first_name", "N" * 151, "at most 150 characters"),
        ("last_name", "L" * 151, "at most 150 characters"),
        ("password", "p" * 1025, "at most 1024 characters"),
    ],
)
def test_registration_refuses_overlong_fields_with_a_form_error(settings, tenant, field, value, message):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    response = Client(HTTP_HOST=tenant.domain).post("/accounts/register/", registration(**{field: value}))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.for_tenant(tenant).exists()


def test_the_profile_caps_names_at_what_the_table_holds(tenant, student, student_client):
    response = student_client.post("/profile/", {"first_name": "N" * 151, "last_name": "Lee"})

    assert response.status_code == 400
    student.refresh_from_db()
    assert student.first_name != "N" * 151
