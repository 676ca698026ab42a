from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from challenges.models import Hint, Project
from tenants.models import Tenant
from vulhub.lib.tenancy import TenantQuerySet


class TeamQuerySet(TenantQuerySet):
    pass


class Team(models.Model):
    """Students of a class who learn and compete together (the tenant's team mode: tenants.TeamMode).

    A solve by any member counts once for the team: the first member's (scoring.teams).
    The invite code lets a student join; a new code makes the old one stale.
    """

    # tenant lookups use uniq_teams_tenant_name_ci, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="teams", db_index=False)
    name = models.CharField(max_length=60)
    invite_code = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    objects = TeamQuerySet.as_manager()

    class Meta:
        db_table = "teams"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "tenant",
                name="uniq_teams_tenant_name_ci",
                violation_error_message="A team of this class already has this name.",
            ),
            models.UniqueConstraint(fields=["tenant", "invite_code"], name="uniq_teams_tenant_invite_code"),
            models.CheckConstraint(condition=~models.Q(name=""), name="chk_teams_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    """A student in a team: at most one team per student."""

    # tenant lookups use uniq_team_memberships_student, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships", db_index=False
    )
    joined_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "team_memberships"
        verbose_name = "team member"
        verbose_name_plural = "team members"
        ordering = ["joined_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"],
                name="uniq_team_memberships_student",
                violation_error_message="This student is already in a team.",
            ),
        ]

    def __str__(self) -> str:
        user = self.user.get_full_name() if type(self).user.is_cached(self) else f"user {self.user_id}"
        team = self.team.name if type(self).team.is_cached(self) else f"team {self.team_id}"
        return f"{user} in {team}"


class SubmissionQuerySet(TenantQuerySet):
    def pending(self):
        return self.filter(status=Submission.Status.PENDING)

    def approved(self):
        return self.filter(status=Submission.Status.APPROVED)

    def other_approvals_of(self, submission):
        """Approved submissions of the same student and challenge, other than this one."""
        return (
            self.for_tenant(submission.tenant_id)
            .filter(user_id=submission.user_id, project_id=submission.project_id)
            .approved()
            .exclude(pk=submission.pk)
        )


class SubmissionStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    APPROVED = "APPROVED", "Approved"
    REJECTED = "REJECTED", "Rejected"
    # an approved write-up whose grade a better one replaced: its grade stays, its points go
    SUPERSEDED = "SUPERSEDED", "Superseded by a better grade"


class SubmissionKind(models.TextChoices):
    FLAG = "FLAG", "Flag"
    WRITEUP = "WRITEUP", "Write-up"


class Submission(models.Model):
    """One attempt of a student at a challenge: a flag or a write-up."""

    Status = SubmissionStatus
    Kind = SubmissionKind
    # tenant lookups use the composite indexes that start with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="submissions", db_index=False)
    # user and project lookups are served by the composite indexes below
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions", db_index=False
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="submissions", db_index=False, verbose_name="challenge"
    )
    # the student's team when they answered: a solve scores for it (scoring.teams), whatever
    # team they are in later; empty when they played alone. Served by idx_submissions_team_solves
    team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="submissions",
        db_index=False,
        editable=False,
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.WRITEUP)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    score = models.SmallIntegerField(null=True, blank=True, help_text="0 to 100; required once graded.")
    points_awarded = models.IntegerField(default=0)
    answer = models.TextField(blank=True, help_text="The write-up, or the flag as given.")
    link = models.URLField(max_length=500, blank=True)
    feedback = models.TextField(blank=True)
    graded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    graded_at = models.DateTimeField(null=True, blank=True)
    # a write-up is edited by its author while it waits (scoring.services.writeup_edit); the
    # count is a version: a grading form can tell that the text moved since it was read.
    # db_default: rows copied in bulk (vulhub.seeding.bulk_load) leave it out
    edited_at = models.DateTimeField(null=True, blank=True, editable=False)
    edit_count = models.IntegerField(default=0, db_default=0, editable=False)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        db_table = "submissions"
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=0, score__lte=100), name="chk_score_positive"),
            models.CheckConstraint(
                condition=models.Q(status="PENDING") | models.Q(score__isnull=False),
                name="chk_score_required_when_graded",
            ),
            models.CheckConstraint(
                condition=models.Q(points_awarded__gte=0), name="chk_submissions_points_awarded_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=SubmissionStatus.values), name="chk_submissions_status"
            ),
            models.CheckConstraint(condition=models.Q(kind__in=SubmissionKind.values), name="chk_submissions_kind"),
            # Points count once per student and challenge, even under races.
            models.UniqueConstraint(
                fields=["tenant", "user", "project"],
                condition=models.Q(status="APPROVED"),
                name="uniq_submissions_one_approved",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "tenant"], name="idx_submissions_user_tenant"),
            models.Index(fields=["project", "status"], name="idx_submissions_project_status"),
            # the grading queue: a tenant's pending submissions, oldest first
            models.Index(fields=["tenant", "status", "submitted_at"], name="idx_submissions_queue"),
            # a challenge's solves (the catalogue, a challenge page) counted from the index
            # alone: under row-level security the tenant must be in it too, or each approval
            # is fetched from the table to check its tenant (docs/scaling.md)
            models.Index(
                fields=["tenant", "project"],
                condition=models.Q(status="APPROVED"),
                name="idx_submissions_solves",
            ),
            # a team's solves (scoring.teams)
            models.Index(
                fields=["tenant", "team", "project"],
                condition=models.Q(status="APPROVED", team__isnull=False),
                name="idx_submissions_team_solves",
            ),
        ]

    def __str__(self) -> str:
        """Whose attempt at what: "Alice Anderson's write-up for SQL Injection 101".

        Named from the student and the challenge only when they are loaded already (the
        services and the admin's lists load them): the audit log calls str() on every save,
        in bulk too, and must not read a row for it.
        """
        kind = "flag" if self.kind == SubmissionKind.FLAG else "write-up"
        user = self.user if type(self).user.is_cached(self) else None
        project = self.project if type(self).project.is_cached(self) else None
        if user is None or project is None:
            return f"{kind.capitalize()} {self.pk or '(new)'} ({self.get_status_display().lower()})"
        return f"{user.get_full_name()}’s {kind} for {project.name}"


class BadgeRuleKind(models.TextChoices):
    FIRST_SOLVE = "FIRST_SOLVE", "First solve"
    FIRST_BLOOD = "FIRST_BLOOD", "First in the class to solve a challenge"
    POINTS_AT_LEAST = "POINTS_AT_LEAST", "Points at least N"
    SOLVES_AT_LEAST = "SOLVES_AT_LEAST", "Solves at least N"
    CATEGORY_SOLVES = "CATEGORY_SOLVES", "N solves in a category"
    CATEGORY_COMPLETE = "CATEGORY_COMPLETE", "Every challenge of a category"
    DIFFICULTY_SOLVES = "DIFFICULTY_SOLVES", "N solves at a difficulty"


class Badge(models.Model):
    """An award: given by an automatic rule, or by hand when it has none."""

    RuleKind = BadgeRuleKind
    # tenant lookups use uniq_badges_tenant_slug, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="badges", db_index=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    icon = models.CharField(max_length=50, blank=True, help_text="Icon name from the bundled set.")
    rule_kind = models.CharField(
        max_length=20, choices=RuleKind.choices, blank=True, help_text="Empty: awarded by hand only."
    )
    rule_params = models.JSONField(default=dict, blank=True, help_text='e.g. {"n": 5, "category": "Web Security"}')
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "badges"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"],
                name="uniq_badges_tenant_slug",
                violation_error_message="A badge with this slug already exists in this class.",
            ),
            models.CheckConstraint(
                condition=models.Q(rule_kind__in=[*BadgeRuleKind.values, ""]), name="chk_badges_rule_kind"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UserBadge(models.Model):
    # tenant lookups use the composite indexes that start with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="user_badges", db_index=False)
    # user lookups are served by idx_user_badges_user_tenant
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_badges", db_index=False
    )
    badge = models.ForeignKey(Badge, on_delete=models.CASCADE, related_name="awards")
    awarded_at = models.DateTimeField(default=timezone.now)
    awarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when a rule awarded it.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "user_badges"
        verbose_name = "badge award"
        verbose_name_plural = "badges awarded"
        ordering = ["-awarded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user", "badge"],
                name="uniq_user_badges_user_badge",
                violation_error_message="This student already has this badge.",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "tenant"], name="idx_user_badges_user_tenant"),
            # the admin home's recent awards and this week's count, newest first
            models.Index(fields=["tenant", "-awarded_at"], name="idx_user_badges_recent"),
        ]

    def __str__(self) -> str:
        """ "First Blood for Alice Anderson" (the e-mail when no name), from the badge and the student loaded with it.

        A bulk path that loaded neither (a rescore taking back hundreds of awards) gets their
        ids instead of two queries per row.
        """
        badge = self.badge.name if type(self).badge.is_cached(self) else f"Badge {self.badge_id}"
        user = self.user.get_full_name() if type(self).user.is_cached(self) else f"user {self.user_id}"
        return f"{badge} for {user}"


class LeaderboardQuerySet(TenantQuerySet):
    def ranked(self):
        # the order of rank (competition ranks follow points), served by idx_leaderboards_tenant_points
        return self.order_by("-points", "last_scored_at", "user_id")


class Leaderboard(models.Model):
    """Materialised standings: one row per student of a tenant, with their totals and rank.

    `rank` is the competition rank (1, 2, 2, 4): one more than the number of the tenant's
    students with more points. The database keeps it (migration scoring 0012): after
    every statement that writes leaderboards, a trigger re-ranks only the rows whose
    points lie between a changed row's old and new points, so no reader ever sees a
    stale rank, whoever wrote the points (a grading, a rebuild, a deletion, SQL).
    """

    # tenant lookups use the composite indexes that start with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="leaderboard", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leaderboard_rows")
    points = models.IntegerField(default=0)
    solves = models.IntegerField(default=0)
    last_scored_at = models.DateTimeField(null=True, blank=True, help_text="Tie-break: who got there first.")
    rank = models.IntegerField(db_default=1, editable=False, help_text="Kept by the database: never set it.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = LeaderboardQuerySet.as_manager()

    class Meta:
        db_table = "leaderboards"
        verbose_name = "leaderboard row"
        verbose_name_plural = "leaderboard"
        ordering = ["-points", "last_scored_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="uniq_leaderboards_tenant_user"),
            models.CheckConstraint(
                condition=models.Q(points__gte=0, solves__gte=0), name="chk_leaderboards_totals_positive"
            ),
            models.CheckConstraint(condition=models.Q(rank__gt=0), name="chk_rank_positive"),
        ]
        indexes = [
            # The board's order; a rank change walks it between a row's old and new points.
            models.Index(fields=["tenant", "-points", "last_scored_at", "user"], name="idx_leaderboards_tenant_points"),
        ]

    def __str__(self) -> str:
        return f"{self.user.get_full_name()}: rank {self.rank}, {self.points} points"


class HintUnlock(models.Model):
    """A hint a student unlocked, and what it cost them then.

    The cost comes off the student's points for that challenge, never below zero for
    it: a challenge scores max(0, its points - the costs of its unlocked hints). Hints
    unlocked before a solve cost nothing until the solve. The cost is kept as charged:
    a hint edited or deleted later changes nothing that was paid.
    """

    # tenant lookups use idx_hint_unlocks_student, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hint_unlocks", db_index=False
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="hint_unlocks", db_index=False, verbose_name="challenge"
    )
    hint = models.ForeignKey(Hint, on_delete=models.SET_NULL, null=True, blank=True, related_name="unlocks")
    # the student's team when they unlocked it: the team pays for it too (scoring.teams)
    team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="hint_unlocks",
        db_index=False,
        editable=False,
    )
    cost = models.IntegerField(default=0)
    unlocked_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "hint_unlocks"
        verbose_name = "hint unlocked"
        verbose_name_plural = "hints unlocked"
        ordering = ["-unlocked_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user", "hint"],
                name="uniq_hint_unlocks_once",
                violation_error_message="This student has already unlocked this hint.",
            ),
            models.CheckConstraint(condition=models.Q(cost__gte=0), name="chk_hint_unlocks_cost_positive"),
        ]
        indexes = [
            models.Index(fields=["tenant", "user", "project"], name="idx_hint_unlocks_student"),
            models.Index(fields=["project"], name="idx_hint_unlocks_project"),
            models.Index(
                fields=["tenant", "team", "project"],
                condition=models.Q(team__isnull=False),
                name="idx_hint_unlocks_team",
            ),
        ]

    def __str__(self) -> str:
        """ "Hint 2 of SQL Injection 101, unlocked by Alice Anderson", from rows already loaded (see Submission)."""
        user = self.user if type(self).user.is_cached(self) else None
        project = self.project if type(self).project.is_cached(self) else None
        hint = self.hint if type(self).hint.is_cached(self) else None
        if user is None or project is None:
            return f"Hint unlocked {self.pk or '(new)'}"
        which = (
            f"Hint {hint.position}"
            if hint is not None
            else "A hint (since deleted)"
            if self.hint_id is None
            else "A hint"
        )
        return f"{which} of {project.name}, unlocked by {user.get_full_name()}"


class TeamLeaderboardQuerySet(TenantQuerySet):
    def ranked(self):
        return self.order_by("-points", "last_scored_at", "team_id")


class TeamLeaderboard(models.Model):
    """Materialised team standings: one row per team with a solve, with its totals and rank.

    Kept as the students' board is (Leaderboard): `rank` is the competition rank, stored
    and kept by the database (migration scoring 0023) after every statement that writes
    the table, under the tenant's leaderboard lock.
    """

    # tenant lookups use the composite indexes that start with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="leaderboard_rows")
    points = models.IntegerField(default=0)
    solves = models.IntegerField(default=0)
    last_scored_at = models.DateTimeField(null=True, blank=True, help_text="Tie-break: who got there first.")
    rank = models.IntegerField(db_default=1, editable=False, help_text="Kept by the database: never set it.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamLeaderboardQuerySet.as_manager()

    class Meta:
        db_table = "team_leaderboards"
        verbose_name = "team standings row"
        verbose_name_plural = "team standings"
        ordering = ["-points", "last_scored_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "team"], name="uniq_team_leaderboards_tenant_team"),
            models.CheckConstraint(
                condition=models.Q(points__gte=0, solves__gte=0), name="chk_team_leaderboards_totals_positive"
            ),
            models.CheckConstraint(condition=models.Q(rank__gt=0), name="chk_team_rank_positive"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-points", "last_scored_at", "team"], name="idx_team_leaderboards_points"),
        ]

    def __str__(self) -> str:
        team = self.team.name if type(self).team.is_cached(self) else f"Team {self.team_id}"
        return f"{team}: rank {self.rank}, {self.points} points"
