from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone

from challenges.models import Project
from tenants.models import Tenant
from vulhub.lib.tenancy import TenantQuerySet


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
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="submissions", db_index=False)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.WRITEUP)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
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
        ]

    def __str__(self) -> str:
        # No related rows here: the audit log calls str() on every save.
        return f"Submission {self.pk} ({self.get_status_display().lower()})"


class BadgeRuleKind(models.TextChoices):
    FIRST_SOLVE = "FIRST_SOLVE", "First solve"
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
        ]

    def __str__(self) -> str:
        return f"Badge {self.badge_id} of user {self.user_id}"


class StudentsAbove(models.Func):
    """The number of students of a tenant with more than `points` points (migration scoring 0011)."""

    function = "leaderboard_students_above"
    output_field = models.IntegerField()


class LeaderboardQuerySet(TenantQuerySet):
    def ranked(self):
        # the order of rank (competition ranks follow points), served by idx_leaderboards_tenant_points
        return self.order_by("-points", "last_scored_at", "user_id")

    def with_rank(self):
        """Annotate each row's competition rank: one more than the students of its tenant with more points.

        Counted per row by leaderboard_students_above() (LeaderboardBand), so it suits a
        few rows (a student's own, an admin page); a whole board is ranked by position
        instead (scoring.selectors).
        """
        return self.annotate(rank=StudentsAbove(F("tenant_id"), F("points")) + 1)


class Leaderboard(models.Model):
    """Materialised standings: one row per student of a tenant, with their totals.

    Ranks are not stored: a rank is one more than the number of students of the tenant
    with more points, read along idx_leaderboards_tenant_points (with_rank(), or by
    position on a page). So a grading writes one row, not every row it moves past.
    """

    # tenant lookups use the composite indexes that start with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="leaderboard", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leaderboard_rows")
    points = models.IntegerField(default=0)
    solves = models.IntegerField(default=0)
    last_scored_at = models.DateTimeField(null=True, blank=True, help_text="Tie-break: who got there first.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = LeaderboardQuerySet.as_manager()

    class Meta:
        db_table = "leaderboards"
        ordering = ["-points", "last_scored_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="uniq_leaderboards_tenant_user"),
            models.CheckConstraint(
                condition=models.Q(points__gte=0, solves__gte=0), name="chk_leaderboards_totals_positive"
            ),
        ]
        indexes = [
            # The board's order; ranks are counted along it.
            models.Index(fields=["tenant", "-points", "last_scored_at", "user"], name="idx_leaderboards_tenant_points"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.points} points)"


# Points per band of LeaderboardBand; the database functions and triggers of migration
# scoring 0011 use the same width.
BAND_POINTS = 100


class LeaderboardBand(models.Model):
    """How many of a tenant's students have a leaderboard row with points in one band.

    Band b holds the rows with b * BAND_POINTS <= points < (b + 1) * BAND_POINTS. Triggers
    on leaderboards keep the counts (migration scoring 0011), so a rank is the band
    counts above the student's band plus a count inside it: a few hundred index entries
    at most, where counting every student with more points walked thousands.
    A band's row stays, at zero, when its last student leaves it.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    band = models.IntegerField()
    students = models.IntegerField(default=0)

    class Meta:
        db_table = "leaderboard_bands"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "band"], name="uniq_leaderboard_bands_tenant_band"),
            models.CheckConstraint(
                condition=models.Q(band__gte=0, students__gte=0), name="chk_leaderboard_bands_positive"
            ),
        ]

    def __str__(self) -> str:
        low = self.band * BAND_POINTS
        return f"{self.students} student(s) with {low}-{low + BAND_POINTS - 1} points"
