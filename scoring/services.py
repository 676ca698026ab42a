"""The rules that turn student work into points, badges and ranks.

Pages, the admin and commands all call these. Each runs in one transaction with its
audit rows and events (`@audit.recorded`). Lock order, to keep concurrent calls from
deadlocking: the student's row, then the challenge's approvals (lock_solves: a grading
takes it before it locks a submission, since a dynamic challenge's new value rescores
every approval of the challenge: scoring.dynamic), then submissions, then the tenant's
leaderboard.
Rows are locked FOR NO KEY UPDATE and only the rows named (`of=("self",)`): the
foreign-key checks other transactions make at commit (FOR KEY SHARE) never wait on them.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone

from audit import api as audit
from challenges.models import Project
from challenges.selectors import CATALOGUE
from tenants.models import Tenant, User
from vulhub.lib import metrics

from . import access, badges, dynamic, leaderboard, team_board
from .catalogue import challenge_state
from .dynamic import lock_solves
from .models import Badge, Submission, UserBadge
from .signals import badge_awarded, badge_revoked, submission_created, submission_graded, writeup_edited


class ScoringError(Exception):
    """A refusal with a message meant for the person who asked."""


class NotAllowed(ScoringError):
    pass


class AlreadySolved(ScoringError):
    pass


class InvalidAnswer(ScoringError):
    pass


class TooManyAttempts(ScoringError):
    pass


class AwaitingGrading(ScoringError):
    pass


class AlreadyGraded(ScoringError):
    """A write-up was graded before the edit reached it: the grade stands, the edit is not saved."""


@dataclass(frozen=True)
class AttemptLimit:
    attempts: int
    window: timedelta

    @classmethod
    def for_tenant(cls, tenant) -> "AttemptLimit":
        options = (tenant.settings or {}).get("flag_attempts", {})
        return cls(
            attempts=int(options.get("limit", settings.FLAG_ATTEMPT_LIMIT)),
            window=timedelta(minutes=int(options.get("window_minutes", settings.FLAG_ATTEMPT_WINDOW_MINUTES))),
        )


def points_for(project: Project, score: int) -> int:
    """round(points * score / 100), halves rounded up (Python's round() would go to even)."""
    return int((Decimal(project.points) * score / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def lock_student(user: User) -> None:
    """The student's row, locked: their answers, unlocks and gradings apply one at a time."""
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).values_list("pk").get()


def submission_create(
    *, user: User, project: Project, flag: str | None = None, writeup: str = "", link: str = ""
) -> Submission:
    """A student's answer to a published challenge of their tenant: a flag, or a write-up.

    A right flag is approved with score 100 at once, a wrong one rejected with 0; a
    write-up waits for grading. A new answer is taken after a rejection or a grade
    below 100 (the best grade counts: see submission_grade), and refused after a full
    score (AlreadySolved) or while an earlier one waits for grading (AwaitingGrading).
    A right flag after a partial grade supersedes it at once. Raises a ScoringError
    with a message for the student when the answer is refused; a refusal for too many
    wrong flags is recorded (in a transaction of its own, after the attempt's has
    rolled back).
    """
    try:
        return _submit(user=user, project=project, flag=flag, writeup=writeup, link=link)
    except TooManyAttempts as refusal:
        metrics.count(metrics.FLAG_LIMIT_REFUSALS)
        audit.record_refusal(
            action="flag_attempt_refused",
            object_type="challenges.project",
            object_id=project.pk,
            object_text=project.name,
            changes={"reason": str(refusal)},
            tenant_id=user.tenant_id,
            actor=user,
        )
        raise


@audit.recorded
def _submit(*, user, project, flag, writeup, link):
    refusal = access.challenge_access(user, project).refusal()
    if refusal:
        raise NotAllowed(refusal)
    if user.role != User.Role.STUDENT:
        raise NotAllowed("Only students submit answers.")
    lock_student(user)  # one submission of a student at a time: the limit and the rules below hold under races
    team_id = team_board.answer_team_id(user, project.tenant)  # the team it scores for (scoring.team_board)
    if team_id is None and project.tenant.team_mode == Tenant.TeamMode.REQUIRED:
        raise NotAllowed("This class plays in teams: create a team or join one with its invite code first.")
    state = challenge_state(user.tenant_id, user, project)
    if state.solved:
        raise AlreadySolved("You have already solved this challenge; it counts once.")
    if state.pending:
        raise AwaitingGrading(
            "Your write-up is waiting for an instructor to grade it. "
            "You can send a new one once it is graded; your best grade counts."
        )
    now = timezone.now()
    submission = Submission(tenant_id=user.tenant_id, user=user, project=project, team_id=team_id, submitted_at=now)
    if project.has_flag:
        if not flag or not flag.strip():
            raise InvalidAnswer("Enter the flag you found.")
        limit = AttemptLimit.for_tenant(project.tenant)
        wrong = Submission.objects.for_tenant(user.tenant_id).filter(
            user=user,
            project=project,
            kind=Submission.Kind.FLAG,
            status=Submission.Status.REJECTED,
            submitted_at__gte=now - limit.window,
        )
        wrong_so_far = wrong.count()
        if wrong_so_far >= limit.attempts:
            raise TooManyAttempts(_limit_message(limit, wrong, wrong_so_far, now))
        right = project.check_flag(flag)
        submission.tries_left = None if right else limit.attempts - wrong_so_far - 1  # for the page, not stored
        submission.kind = Submission.Kind.FLAG
        submission.answer = flag.strip()[:500]
        submission.status = Submission.Status.APPROVED if right else Submission.Status.REJECTED
        submission.score = 100 if right else 0
        submission.points_awarded = project.points if right else 0
        if right:  # timed once the challenge's earlier approvals have committed
            lock_solves(project.pk)
            submission.submitted_at = now = timezone.now()
        submission.graded_at = now
    else:
        if not writeup or not writeup.strip():
            raise InvalidAnswer("Write up how you solved it before submitting.")
        submission.kind = Submission.Kind.WRITEUP
        submission.answer = writeup.strip()
        submission.link = link.strip()
    superseded_team = None
    if submission.status == Submission.Status.APPROVED and state.partial:
        # a right flag after a partial grade: the full score replaces it (before the save,
        # so that one approval stands at any moment)
        counting = _counting_approval(user=user, project=project)
        superseded_team = counting.team_id
        _supersede(counting=counting, actor=user)
    submission.save()
    submission_created.send(sender=Submission, submission=submission, actor=user)
    metrics.count_after_commit(metrics.SUBMISSIONS, kind=submission.kind.lower(), outcome=_outcome(submission))
    if submission.status == Submission.Status.APPROVED:
        after_scoring(user=user, actor=None)
        # after_scoring holds the tenant's leaderboard lock: a teammate's solve waits for this one
        team_board.update_teams(tenant_id=user.tenant_id, team_ids=[team_id, superseded_team], tenant_locked=True)
        if project.is_dynamic:  # one more solver: the value and every solver's points follow (rows in step first)
            dynamic.settle(project, caches_invalidated=True)
            submission.points_awarded = points_for(project, submission.score)
    return submission


def _outcome(submission: Submission) -> str:
    """The submissions metric's outcome: correct and wrong flags, write-ups pending."""
    return {Submission.Status.APPROVED: "correct", Submission.Status.REJECTED: "wrong"}.get(
        submission.status, "pending"
    )


@audit.recorded
def writeup_edit(*, submission: Submission, user: User, writeup: str, link: str = "") -> Submission:
    """The author edits their write-up while it waits for grading: its text and link.

    Taken only from its author, only while it is pending (AlreadyGraded once an
    instructor has graded it: the grade was given to the text they read), and only while
    the challenge takes answers (closed, locked or outside the event: NotAllowed, as a
    new submission would be). The row is locked, so a grading and an edit of the same
    write-up apply one after the other, never half of each. An edit counts up
    `edit_count`, sets `edited_at` and sends `writeup_edited` (a WriteupEdited event;
    the audit log keeps the old and new text); points do not move. The same text and
    link again: nothing is saved or recorded, and the submission comes back as it was.
    """
    if submission.user_id != user.pk or submission.tenant_id != user.tenant_id:
        raise NotAllowed("Only its author edits a write-up.")
    if submission.kind != Submission.Kind.WRITEUP:
        raise NotAllowed("Only a write-up can be edited; a flag is checked when it is sent.")
    refusal = access.challenge_access(user, submission.project).refusal()
    if refusal:
        raise NotAllowed(refusal)
    writeup, link = (writeup or "").strip(), (link or "").strip()
    if not writeup:
        raise InvalidAnswer("Write up how you solved it before saving.")
    current = Submission.objects.select_for_update(no_key=True, of=("self",)).get(pk=submission.pk)
    if current.status != Submission.Status.PENDING:
        raise AlreadyGraded(
            "An instructor graded this write-up before your edit arrived: the grade is for the text they read, "
            "and your edit was not saved. Your edited text is below; if the grade is below full marks, "
            "send it as an improved write-up on the challenge's page."
        )
    current.project = submission.project
    if current.answer == writeup and current.link == link:
        return current
    previous = {"answer": current.answer, "link": current.link}
    current.answer = writeup
    current.link = link
    current.edited_at = timezone.now()
    current.edit_count += 1
    current.save(update_fields=["answer", "link", "edited_at", "edit_count"])
    writeup_edited.send(sender=Submission, submission=current, previous=previous, actor=user)
    return current


def _limit_message(limit: AttemptLimit, wrong, count: int, now) -> str:
    """The refusal at the limit: how many wrong flags in how long, and when the next try is taken.

    A try is taken again once fewer than the limit lie in the window: when the wrong flag
    that many places from the newest leaves it.
    """
    minutes = int(limit.window.total_seconds() // 60)
    if limit.attempts <= 0:
        return "This class takes no flags on this challenge."
    leaving = wrong.order_by("submitted_at").values_list("submitted_at", flat=True)[count - limit.attempts]
    opens = leaving + limit.window
    wait = max(int((opens - now).total_seconds() // 60) + 1, 1)
    at = timezone.localtime(opens).strftime("%H:%M")
    return (
        f"Too many wrong flags: {limit.attempts} in {minutes} minutes. "
        f"Your next try is taken from {at} (in {wait} minute{'s' if wait != 1 else ''}); the flag you typed is kept."
    )


@audit.recorded
def submission_grade(
    *,
    submission: Submission,
    status: str,
    score: int,
    grader: User,
    feedback: str = "",
    seen_edit_count: int | None = None,
) -> Submission:
    """Grade a submission, or regrade it: status, score 0..100 and feedback, by staff of its tenant.

    The best grade counts, and the history stays. Approving a submission while another
    of the same student and challenge is approved:

    - with a higher score: the other one stops counting. It becomes SUPERSEDED with no
      points (its score and feedback stay), in this transaction, and its change is
      sent as a SubmissionGraded event of its own (the replay keeps each submission's
      latest state and counts only the approved ones);
    - with the same or a lower score: refused (InvalidAnswer, a message for the grader):
      it would not count, and a refusal says so rather than recording a grade that
      silently does nothing; rejecting it, or grading it higher, is the way on;
    - a SUPERSEDED submission is not approved again while another one is (reject that
      one first).

    Regrading the approved submission itself (even below a superseded one's score)
    changes its points; the superseded ones stay as they are.

    `seen_edit_count`: the write-up's `edit_count` when the grader read it (a grading
    form passes it). If its author has edited it since (writeup_edit), the grade is
    refused (InvalidAnswer): it would be given to a text the grader has not read.
    """
    if not (grader.is_superuser or (grader.is_staff and grader.tenant_id == submission.tenant_id)):
        raise NotAllowed("Only the instructors of this class grade its submissions.")
    if status not in (Submission.Status.APPROVED, Submission.Status.REJECTED):
        raise InvalidAnswer("A grade approves or rejects the submission.")
    if not isinstance(score, int) or not 0 <= score <= 100:
        raise InvalidAnswer("The score is a whole number from 0 to 100.")
    student = User.objects.select_for_update(no_key=True).get(pk=submission.user_id)
    lock_solves(submission.project_id)  # before any submission row: see the lock order above
    current = (
        Submission.objects.select_for_update(no_key=True, of=("self",)).select_related("project").get(pk=submission.pk)
    )
    if seen_edit_count is not None and current.edit_count != seen_edit_count:
        raise InvalidAnswer(
            "The student edited this write-up after you opened it: read it again before grading it. Nothing was saved."
        )
    counting = None
    if status == Submission.Status.APPROVED:
        counting = Submission.objects.other_approvals_of(current).select_for_update(no_key=True, of=("self",)).first()
        refusal = _approval_refusal(current, score, counting)
        if refusal:
            raise InvalidAnswer(refusal)
    if counting is not None:  # the better grade replaces it; superseded first: one approval at any moment
        counting.project = current.project
        _supersede(counting=counting, actor=grader)
    previous = {"status": current.status, "score": current.score, "points_awarded": current.points_awarded}
    current.status = status
    current.score = score
    current.points_awarded = points_for(current.project, score) if status == Submission.Status.APPROVED else 0
    current.feedback = feedback
    current.graded_by = grader
    current.graded_at = timezone.now()
    current.save()
    submission_graded.send(sender=Submission, submission=current, previous=previous, actor=grader)
    metrics.count_after_commit(metrics.GRADINGS, decision=status.lower())
    after_scoring(user=student, actor=grader)
    # the answer's team (and a superseded answer's, if another): a grade moves what the team scores
    team_board.update_teams(
        tenant_id=current.tenant_id,
        team_ids=[current.team_id, counting.team_id if counting else None],
        tenant_locked=True,  # after_scoring took it
    )
    if current.project.is_dynamic:  # the number of solvers may have moved, and with it the value
        dynamic.settle(current.project, actor=grader, caches_invalidated=True)
        current.points_awarded = points_for(current.project, score) if status == Submission.Status.APPROVED else 0
    return current


def approval_refusal(*, submission: Submission, score: int) -> str | None:
    """Why approving `submission` with `score` would be refused (for the grading form), or None.

    The same rule submission_grade applies, read without locks: the service checks
    again under them.
    """
    counting = Submission.objects.other_approvals_of(submission).only("pk", "score").first()
    return _approval_refusal(submission, score, counting)


def _approval_refusal(submission: Submission, score: int, counting: Submission | None) -> str | None:
    if counting is None:
        return None
    if submission.status == Submission.Status.SUPERSEDED:
        return (
            f"This student already has an approved submission for this challenge ({counting.score}/100). "
            "This one was superseded by a better grade: reject that one first to approve this one again."
        )
    if score <= counting.score:
        return (
            f"This student already has an approved submission for this challenge with {counting.score}/100; "
            f"a grade of {score}/100 would not count. Approve with a higher score, or reject."
        )
    return None


def _counting_approval(*, user: User, project: Project) -> Submission:
    """The student's approved submission of the challenge, locked, with its project set."""
    counting = (
        Submission.objects.for_tenant(user.tenant_id)
        .filter(user=user, project=project)
        .approved()
        .select_for_update(no_key=True, of=("self",))
        .get()
    )
    counting.project = project
    return counting


def _supersede(*, counting: Submission, actor: User | None) -> None:
    """A better grade replaces `counting` (locked): it stops counting and keeps its grade and feedback."""
    previous = {"status": counting.status, "score": counting.score, "points_awarded": counting.points_awarded}
    counting.status = Submission.Status.SUPERSEDED
    counting.points_awarded = 0
    counting.save()
    submission_graded.send(sender=Submission, submission=counting, previous=previous, actor=actor)


def after_scoring(*, user: User, actor: User | None) -> None:
    """After a student's points moved: their leaderboard row, the catalogue's counts, their automatic badges."""
    leaderboard.update_student(tenant_id=user.tenant_id, user_id=user.pk)
    CATALOGUE.invalidate_on_commit(user.tenant_id)  # solve counts moved
    rules = badges.rule_badges(user)  # each with the student's automatic award of it, if any
    earned = badges.earned_badge_ids(user, rules)
    for badge in rules:
        if badge.pk in earned and badge.held_award is None:
            _award(badge=badge, user=user, awarded_by=None)
    lost = [badge.held_award for badge in rules if badge.pk not in earned and badge.held_award is not None]
    for award in UserBadge.objects.filter(pk__in=lost).select_related("badge"):  # no query when none is lost
        _revoke(award=award, actor=actor, reason="The grade that earned it changed.")


def _award(*, badge: Badge, user: User, awarded_by: User | None) -> UserBadge | None:
    award, created = UserBadge.objects.get_or_create(
        tenant_id=user.tenant_id, user=user, badge=badge, defaults={"awarded_by": awarded_by}
    )
    if not created:
        return None
    badge_awarded.send(sender=UserBadge, user_badge=award, actor=awarded_by)
    metrics.count_after_commit(metrics.BADGE_AWARDS, how="automatic" if awarded_by is None else "manual")
    return award


def _revoke(*, award: UserBadge, actor: User | None, reason: str) -> None:
    award.delete()
    badge_revoked.send(sender=UserBadge, user_badge=award, actor=actor, reason=reason)


@audit.recorded
def badge_award(*, badge: Badge, user: User, actor: User) -> UserBadge:
    """Award a badge by hand (staff of the badge's tenant)."""
    if not (actor.is_superuser or (actor.is_staff and actor.tenant_id == badge.tenant_id)):
        raise NotAllowed("Only the instructors of this class award its badges.")
    if user.tenant_id != badge.tenant_id:
        raise NotAllowed("That student is not in this class.")
    lock_student(user)
    award = _award(badge=badge, user=user, awarded_by=actor)
    if award is None:
        raise InvalidAnswer(f"{user.get_full_name()} already has the badge “{badge.name}”.")
    return award


@audit.recorded
def badge_revoke(*, badge: Badge, user: User, actor: User, reason: str = "") -> None:
    """Take a badge back by hand (staff of the badge's tenant), saying why.

    The reason is in the BadgeRevoked event and in a "revoke" audit row written beside
    the award's "delete" row (which says what was deleted, not why).
    """
    if not (actor.is_superuser or (actor.is_staff and actor.tenant_id == badge.tenant_id)):
        raise NotAllowed("Only the instructors of this class revoke its badges.")
    lock_student(user)
    award = (
        UserBadge.objects.for_tenant(badge.tenant_id)
        .filter(user=user, badge=badge)
        .select_related("badge", "user")  # its name in the audit rows: "First Blood for Alice Anderson"
        .first()
    )
    if award is None:
        raise InvalidAnswer(f"{user.get_full_name()} does not have the badge “{badge.name}”.")
    reason = reason.strip() or "Revoked by an instructor."
    award_id, award_text = award.pk, str(award)  # the pk is gone once deleted
    _revoke(award=award, actor=actor, reason=reason)
    audit.record(
        action="revoke",
        object_type=UserBadge._meta.label_lower,
        object_id=award_id,
        object_text=award_text,
        changes={"reason": [None, reason]},
        tenant_id=award.tenant_id,
        actor=actor,
    )
