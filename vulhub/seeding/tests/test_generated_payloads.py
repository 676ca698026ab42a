"""The generated audit rows and events follow their one definition, whatever it says.

`vulhub.seeding.generated` writes a submission's and a badge award's records from
templates of the definitions (audit.api.created_changes and diff, scoring.records'
payload functions, the models' __str__), filled with each row's values. These tests
compare every generated record with what the definitions give for the same row, and
change the definitions to see the change reach the generated rows. Nothing is saved:
generation alone needs no database.
"""

import itertools
import json

import pytest

from audit import api as audit_api
from audit import receivers
from scoring import records as scoring_records
from scoring.models import Submission, UserBadge
from vulhub.seeding import generated


def generate(seed=7, students=30, challenges=8, submissions=900):
    counter = itertools.count(1)
    ids = generated.Ids(lambda table, n: [next(counter) for _ in range(n)])
    return generated.generate_tenant(
        seed=seed, number=1, students=students, challenges=challenges, submissions=submissions, ids=ids
    )


def by_key(data):
    audits = {(a[4], a[5], a[3]): a for a in data.audits}  # (object type, object id, action)
    events = {(e[1], e[2], e[3]): e for e in data.events}  # (aggregate type, aggregate id, version)
    return audits, events


def submission_of(row, projects) -> Submission:
    values = dict(zip(generated.SUBMISSION_COLUMNS, row, strict=True))
    project = projects[values.pop("project_id")]
    return Submission(project=project, **values)


def as_sent(submission: Submission) -> Submission:
    """The write-up as the student sent it, before an instructor graded it."""
    return Submission(
        id=submission.id,
        tenant_id=submission.tenant_id,
        user_id=submission.user_id,
        project=submission.project,
        kind=submission.kind,
        answer=submission.answer,
        link=submission.link,
        submitted_at=submission.submitted_at,
    )


def same_json(value):
    return json.loads(json.dumps(value))


def test_every_generated_record_is_what_the_definitions_give_for_its_row():
    data = generate()
    audits, events = by_key(data)
    projects = {p.pk: p for p in data.projects}
    shapes = set()
    for row in data.submissions:
        submission = submission_of(row, projects)
        key = str(submission.pk)
        sent = submission if submission.graded_by_id is None else as_sent(submission)
        created = audits[("scoring.submission", key, "create")]
        assert json.loads(created[7]) == same_json(audit_api.created_changes(sent)), row
        assert created[6] == str(sent)
        event = events[("Submission", key, 1)]
        assert event[4] == "SubmissionCreated"
        assert json.loads(event[5]) == same_json(scoring_records.submission_payload(sent)), row
        if sent is not submission:
            previous = {"status": sent.status, "score": sent.score, "points_awarded": sent.points_awarded}
            update = audits[("scoring.submission", key, "update")]
            changes = audit_api.diff(submission, audit_api.current_values(sent), audit_api.current_values(submission))
            assert json.loads(update[7]) == same_json(changes), row
            assert update[6] == str(submission)
            event = events[("Submission", key, 2)]
            assert event[4] == "SubmissionGraded"
            assert json.loads(event[5]) == same_json(scoring_records.graded_payload(submission, previous)), row
        else:
            assert ("scoring.submission", key, "update") not in audits
        shapes.add((row[4], row[5], bool(row[9]), bool(row[10]), row[7] == 0))
    # every kind of row was compared: flags right and wrong, write-ups pending and graded, with and without
    # a link and feedback, graded with and without points
    assert {s[:2] for s in shapes} >= {
        ("FLAG", "APPROVED"), ("FLAG", "REJECTED"), ("WRITEUP", "PENDING"), ("WRITEUP", "APPROVED"),
        ("WRITEUP", "REJECTED"),
    }  # fmt: skip
    writeups = {s[2:] for s in shapes if s[0] == "WRITEUP" and s[1] != "PENDING"}
    assert {link for link, _, _ in writeups} == {True, False}
    assert {feedback for _, feedback, _ in writeups} == {True, False}
    assert {zero for _, _, zero in writeups} == {True, False}

    badges = {b.pk: b for b in data.badges}
    awarded = {}  # (student, badge) -> payload
    for event in data.events:
        if event[4] == "BadgeAwarded":
            payload = json.loads(event[5])
            awarded[(int(event[2]), payload["badge_id"])] = payload
    assert len(awarded) == len(data.user_badges) > 0
    for row in data.user_badges:
        award = UserBadge(**dict(zip(generated.USER_BADGE_COLUMNS, row, strict=True)))
        award.badge = badges[award.badge_id]
        created = audits[("scoring.userbadge", str(award.pk), "create")]
        assert json.loads(created[7]) == same_json(audit_api.created_changes(award))
        assert created[6] == str(award)
        assert awarded[(award.user_id, award.badge_id)] == same_json(scoring_records.awarded_payload(award))
    assert {payload["automatic"] for payload in awarded.values()} == {True, False}


def test_a_flag_answer_is_redacted_and_a_write_up_is_not():
    data = generate(submissions=300)
    audits, _ = by_key(data)
    written = "".join(a[7] for a in data.audits)
    for row in data.submissions:
        changes = json.loads(audits[("scoring.submission", str(row[0]), "create")][7])
        if row[4] == "FLAG":
            assert changes["answer"] == [None, "[redacted]"] and row[8] not in written
        else:
            assert changes["answer"] == [None, row[8]]


def test_a_changed_payload_definition_reaches_the_generated_events(monkeypatch):
    submission_payload, awarded_payload = scoring_records.submission_payload, scoring_records.awarded_payload

    def with_version(submission, **signal):
        return submission_payload(submission, **signal) | {"format": 2, "again_id": submission.pk}

    def with_note(user_badge, **signal):
        return awarded_payload(user_badge, **signal) | {"note": f"badge {user_badge.badge.slug}"}

    monkeypatch.setattr(scoring_records, "submission_payload", with_version)
    monkeypatch.setattr(scoring_records, "awarded_payload", with_note)
    data = generate(submissions=300)
    seen = set()
    for event in data.events:
        payload = json.loads(event[5])
        if event[4] in ("SubmissionCreated", "SubmissionGraded"):  # graded_payload builds on submission_payload
            assert payload["format"] == 2 and payload["again_id"] == int(event[2]) == payload["submission_id"]
            seen.add(event[4])
        elif event[4] == "BadgeAwarded":
            slug = next(b.slug for b in data.badges if b.pk == payload["badge_id"])
            assert payload["note"] == f"badge {slug}"
            seen.add(event[4])
    assert seen == {"SubmissionCreated", "SubmissionGraded", "BadgeAwarded"}

    monkeypatch.undo()
    again = generate(submissions=300)  # templates are per tenant: the definition is back
    assert not any("format" in json.loads(e[5]) for e in again.events if e[4] == "SubmissionCreated")


def test_changed_audit_definitions_reach_the_generated_changes(monkeypatch):
    created_changes = audit_api.created_changes

    def with_marker(instance):
        return created_changes(instance) | {"origin": ["seed", instance._meta.label_lower]}

    monkeypatch.setattr(audit_api, "created_changes", with_marker)
    # a write-up's link becomes a secret too: the generated rows redact it
    audited = receivers.AUDITED["scoring.Submission"]
    monkeypatch.setitem(
        receivers.AUDITED, "scoring.Submission", receivers.Audited(audited.secrets | {"link"}, audited.secret_when)
    )
    data = generate(submissions=300)
    links = 0
    for audit in data.audits:
        if audit[3] == "create" and audit[4] in ("scoring.submission", "scoring.userbadge"):
            changes = json.loads(audit[7])
            assert changes["origin"] == ["seed", audit[4]]
            if "link" in changes:
                assert changes["link"] == [None, "[redacted]"]
                links += 1
    assert links > 0
    assert not any("https://" in a[7] for a in data.audits if a[4] == "scoring.submission")


@pytest.mark.parametrize(
    "extra",
    [
        lambda submission: {"category": submission.project.category.upper()},
        lambda submission: {"day": submission.submitted_at.date().isoformat()},
        lambda submission: {"next_id": submission.pk + 1},
        lambda submission: {"short": submission.answer.strip()[:40]},
    ],
    ids=["upper", "date", "arithmetic", "truncated"],
)
def test_a_definition_that_computes_from_a_value_is_refused_not_copied_wrong(monkeypatch, extra):
    submission_payload = scoring_records.submission_payload
    monkeypatch.setattr(scoring_records, "submission_payload", lambda s, **signal: submission_payload(s) | extra(s))
    with pytest.raises(ValueError, match="computes a value from a marker"):
        generate(submissions=200)


def test_templates_are_built_once_per_shape_of_row(monkeypatch):
    built = []
    build = generated._submission_records

    def counting(row):
        built.append(row)
        return build(row)

    monkeypatch.setattr(generated, "_submission_records", counting)
    data = generate(submissions=900)
    # what a diff or a definition may treat differently: kind, status, and which values are empty
    shapes = {(r[4], r[5], *(v in (None, "", 0) for v in r[6:12]), r[13] is None) for r in data.submissions}
    assert len(built) == len(shapes) >= 8
