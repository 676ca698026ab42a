"""What recording costs: a submission write with its audit row and event, against the same write unrecorded.

Ours is scoring.services.submission_create (a write-up, so it waits for grading) as a
student makes it in the largest tenant: lock the student, check the challenge is not
solved, insert, send SubmissionCreated, and at the end of its transaction write the
audit row (through the hash-chain function) and the event. The baseline is the same
call with the recorders disconnected (Submission's post_init/post_save audit
receivers and the SubmissionCreated event receiver, as bench/audit_cost.py does).
Each write is its own transaction as in the app, nested (a savepoint) in a throwaway
transaction that is rolled back after each run, so the dataset does not change; the
commit's flush is therefore left out on both sides, which if anything raises the ratio.
A second, report-only figure times the bare save alone against the save with its records.
"""

import uuid
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import signals as model_signals

from audit import receivers
from audit.recording import in_bulk
from bench.framework import Context, Figure, Series, timed_ms
from challenges.models import Project
from scoring import services
from scoring import signals as scoring_signals
from scoring.models import Submission
from tenants.models import User

SCENARIO = "8 Recording cost"
WRITEUP = "How I solved it: " + "enumerated the inputs, found the injection, wrote it up. " * 8


@contextmanager
def recording_off():
    """Submission writes without their audit rows and SubmissionCreated events, for the block."""
    hooks = [
        (model_signals.post_save, receivers.record_save, Submission, "audit.scoring.Submission.save"),
        (model_signals.post_init, receivers.remember_loaded, Submission, "audit.scoring.Submission.init"),
        (scoring_signals.submission_created, receivers.record_submission_created, None, "audit.submission_created"),
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


def pairs_of(tenant_id: int, count: int) -> list[tuple[User, Project]]:
    """`count` (student, challenge) writes that are all accepted: a fresh write-up challenge.

    Made inside the run's throwaway transaction, so nobody has solved it, whatever
    earlier runs left in the dataset; a student may hand in several write-ups.
    """
    students = list(User.objects.for_tenant(tenant_id).students().order_by("pk")[:500])
    project = Project.objects.create(
        tenant_id=tenant_id,
        name="Benchmark write-up",
        slug=f"bench-writeup-{uuid.uuid4().hex[:8]}",
        category="Web Security",
        difficulty=Project.Difficulty.BEGINNER,
        points=100,
        is_published=True,
    )
    return [(students[i % len(students)], project) for i in range(count)]


def service_write(student, project) -> None:
    services.submission_create(user=student, project=project, writeup=WRITEUP)


def bare_save(student, project, recorded: bool) -> None:
    with in_bulk() if recorded else transaction.atomic():
        submission = Submission(tenant_id=student.tenant_id, user=student, project=project, answer=WRITEUP)
        submission.save()
        scoring_signals.submission_created.send(sender=Submission, submission=submission, actor=student)


def per_write_ms(write, pairs) -> float:
    return timed_ms(lambda: [write(s, p) for s, p in pairs]) / len(pairs)


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    writes = 30 if ctx.smoke else 300
    times = {"recorded": [], "off": [], "save recorded": [], "save off": []}
    added = {}
    for run_number in range(ctx.runs):
        with transaction.atomic():  # throwaway: rolled back below
            pairs = pairs_of(tenant["id"], writes)
            for _, (student, project) in zip(range(5), pairs, strict=False):  # warm up
                service_write(student, project)
            sides = ["recorded", "off"] if run_number % 2 == 0 else ["off", "recorded"]
            for side in sides:
                before = heads()
                if side == "off":
                    with recording_off():
                        times["off"].append(per_write_ms(service_write, pairs))
                        times["save off"].append(per_write_ms(lambda s, p: bare_save(s, p, False), pairs))
                else:
                    times["recorded"].append(per_write_ms(service_write, pairs))
                    times["save recorded"].append(per_write_ms(lambda s, p: bare_save(s, p, True), pairs))
                after = heads()
                added[side] = (after[0] > before[0], after[1] > before[1])
            transaction.set_rollback(True)
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
            note=f"ms per write-up submission through the service, each its own (nested) transaction, all rolled "
            f"back; {where}",
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
