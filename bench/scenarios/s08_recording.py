"""What recording costs: a submission write with its audit row and event, against the same write unrecorded.

Ours is scoring.services.submission_create (a write-up, so it waits for grading) as a
student makes it in the largest tenant: lock the student, check the challenge is not
solved, insert, send SubmissionCreated, and at the end of its transaction write the
audit row (through the hash-chain function) and the event. The baseline is the same
call with the recorders disconnected (Submission's post_init/post_save audit
receivers and the SubmissionCreated event receiver, as bench/audit_cost.py does).

Each write runs in a transaction of its own, as a request's does (TenantMiddleware
opens it; the service's own block is a savepoint inside), and the transaction is
rolled back after the write, so the dataset does not change. Only the write is timed:
the commit's flush and the rollback are left out on both sides, which if anything
raises the ratio. The challenge written to is opened for the scenario (committed,
with its audit row) and unpublished after it.

A second, report-only figure times the bare save alone against the save with its records.
"""

from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import signals as model_signals

from audit import receivers
from audit.api import in_bulk
from bench.framework import Context, Figure, Series, timed_ms
from bench.http_load import open_challenge
from challenges.models import Project
from scoring import records, services
from scoring import signals as scoring_signals
from scoring.models import Submission
from tenants.models import User

SCENARIO = "8 Recording cost"
# The bench reaches into audit's receivers (not only audit.api) to switch recording off: that is what it measures.
SUBMISSION_CREATED = next(event for event in records.EVENTS if event.event_type == "SubmissionCreated")
WRITEUP = "How I solved it: " + "enumerated the inputs, found the injection, wrote it up. " * 8


@contextmanager
def recording_off():
    """Submission writes without their audit rows and SubmissionCreated events, for the block."""
    hooks = [
        (model_signals.post_save, receivers.record_save, Submission, "audit.scoring.Submission.save"),
        (model_signals.post_init, receivers.remember_loaded, Submission, "audit.scoring.Submission.init"),
        (scoring_signals.submission_created, SUBMISSION_CREATED.record, None, "audit.SubmissionCreated"),
    ]
    for signal, receiver, sender, uid in hooks:
        signal.disconnect(receiver, sender=sender, dispatch_uid=uid)
    try:
        yield
    finally:
        for signal, receiver, sender, uid in hooks:
            signal.connect(receiver, sender=sender, dispatch_uid=uid)


def heads() -> tuple[int, int]:
    """The newest audit row and event: what a batch of writes added, without counting tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT coalesce(max(id), 0) FROM audit_logs), "
                       "(SELECT coalesce(max(position), 0) FROM event_store)")  # fmt: skip
        return cursor.fetchone()


def pairs_of(ctx: Context, tenant_id: int, count: int) -> list[tuple[User, Project]]:
    """`count` (student, challenge) writes that are all accepted: a challenge nobody has answered.

    Every write is rolled back, so one new write-up challenge serves every run.
    """
    students = list(User.objects.for_tenant(tenant_id).students().order_by("pk")[:500])
    project = Project.objects.get(pk=open_challenge(ctx, tenant_id, flag=False).id)
    return [(students[i % len(students)], project) for i in range(count)]


def service_write(student, project) -> None:
    services.submission_create(user=student, project=project, writeup=WRITEUP)


def bare_save(student, project, recorded: bool) -> None:
    with in_bulk() if recorded else transaction.atomic():
        submission = Submission(tenant_id=student.tenant_id, user=student, project=project, answer=WRITEUP)
        submission.save()
        scoring_signals.submission_created.send(sender=Submission, submission=submission, actor=student)


def per_write_ms(write, pairs) -> float:
    """Mean milliseconds of `write(student, project)`, each in a transaction of its own that is then rolled back."""
    elapsed = 0.0
    for student, project in pairs:
        with transaction.atomic():
            elapsed += timed_ms(lambda s=student, p=project: write(s, p))
            transaction.set_rollback(True)
    return elapsed / len(pairs)


def records_added(write, pair) -> tuple[bool, bool]:
    """Whether one write adds an audit row and an event (seen inside its transaction, then rolled back)."""
    with transaction.atomic():
        before = heads()
        write(*pair)
        after = heads()
        transaction.set_rollback(True)
    return after[0] > before[0], after[1] > before[1]


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    writes = 30 if ctx.smoke else 300
    times = {"recorded": [], "off": [], "save recorded": [], "save off": []}
    pairs = pairs_of(ctx, tenant["id"], writes)
    per_write_ms(service_write, pairs[:5])  # warm up
    added = {"recorded": records_added(service_write, pairs[0])}
    with recording_off():
        added["off"] = records_added(service_write, pairs[0])
    for run_number in range(ctx.runs):
        sides = ["recorded", "off"] if run_number % 2 == 0 else ["off", "recorded"]
        for side in sides:
            if side == "off":
                with recording_off():
                    times["off"].append(per_write_ms(service_write, pairs))
                    times["save off"].append(per_write_ms(lambda s, p: bare_save(s, p, False), pairs))
            else:
                times["recorded"].append(per_write_ms(service_write, pairs))
                times["save recorded"].append(per_write_ms(lambda s, p: bare_save(s, p, True), pairs))
    if added != {"recorded": (True, True), "off": (False, False)}:
        raise AssertionError(f"audit rows / events written (recorded, off): {added}")
    where = f"tenant {tenant['slug']} ({tenant['submissions']:,} submissions); {writes} writes per side and run"
    return [
        Figure(
            SCENARIO,
            "submission_create recorded vs unrecorded",
            ours=Series("with audit row and event", times["recorded"]),
            baseline=Series("recorders disconnected", times["off"]),
            compare="cost",
            goal_op="<=",
            goal=1.3,
            note=f"ms per write-up submission through the service, each in a transaction of its own (rolled "
            f"back after it, untimed); {where}",
            extra={"writes_per_run": writes},
        ),
        Figure(
            SCENARIO,
            "bare save recorded vs unrecorded",
            ours=Series("save + audit row + event", times["save recorded"]),
            baseline=Series("save alone", times["save off"]),
            compare="cost",
            goal=None,
            note=f"report: the INSERT alone against the INSERT with its records (no lock, no checks); {where}",
            extra={"writes_per_run": writes},
        ),
    ]
