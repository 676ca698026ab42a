import math
import uuid
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from vulhub.lib.tenancy import TenantQuerySet

from .flags import check_flag, make_flag_hash


class ProjectQuerySet(TenantQuerySet):
    def published(self):
        return self.filter(is_published=True)


class Difficulty(models.TextChoices):
    BEGINNER = "BEGINNER", "Beginner"
    INTERMEDIATE = "INTERMEDIATE", "Intermediate"
    ADVANCED = "ADVANCED", "Advanced"
    EXPERT = "EXPERT", "Expert"


class Scoring(models.TextChoices):
    STATIC = "STATIC", "Fixed points"
    DYNAMIC = "DYNAMIC", "Dynamic: the value falls as students solve it"


class Decay(models.TextChoices):
    LOGARITHMIC = "LOGARITHMIC", "Logarithmic (CTFd): slow at first, then faster"
    LINEAR = "LINEAR", "Linear: the same step for every solver"


def dynamic_value(*, initial: int, minimum: int, decay: int, function: str, solvers: int) -> int:
    """A dynamic challenge's value once `solvers` students have solved it (CTFd's formulas).

    The first solver gets the initial value; with n solvers (n >= 1), s = n - 1:
    - LOGARITHMIC: ceil(initial + (minimum - initial) / decay**2 * s**2), reaching the
      minimum at the `decay`-th solver after the first and staying there;
    - LINEAR: initial - decay * s, down to the minimum.
    """
    s = max(solvers - 1, 0)
    if function == Decay.LINEAR:
        value = initial - decay * s
    else:
        value = math.ceil(initial + (minimum - initial) / (decay * decay) * (s * s))
    return max(int(value), minimum)


class Project(models.Model):
    """A challenge: what students solve, with a flag or a write-up."""

    Difficulty = Difficulty
    Scoring = Scoring
    Decay = Decay

    # tenant lookups use uniq_projects_tenant_slug, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="projects", db_index=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True, help_text="Markdown; rendered sanitised.")
    category = models.CharField(max_length=100)
    difficulty = models.CharField(max_length=12, choices=Difficulty.choices)
    points = models.IntegerField(
        default=100, help_text="What a full solve earns. For a dynamic challenge: its current value, kept by VulHub."
    )
    # db_default too: rows written in SQL (the bulk seed, an operator) get them as well
    scoring = models.CharField(max_length=8, choices=Scoring.choices, default=Scoring.STATIC, db_default=Scoring.STATIC)
    initial_points = models.IntegerField(
        null=True, blank=True, help_text="Dynamic scoring: the value before anyone solves it."
    )
    minimum_points = models.IntegerField(
        null=True, blank=True, help_text="Dynamic scoring: the value never falls below this."
    )
    decay = models.IntegerField(
        null=True,
        blank=True,
        help_text="Dynamic scoring. Logarithmic: the number of solvers (after the first) at which the value reaches "
        "the minimum. Linear: the points the value loses with each solver.",
    )
    decay_function = models.CharField(
        max_length=12, choices=Decay.choices, default=Decay.LOGARITHMIC, db_default=Decay.LOGARITHMIC
    )
    opens_at = models.DateTimeField(null=True, blank=True, help_text="Hidden from students before this time.")
    closes_at = models.DateTimeField(
        null=True, blank=True, help_text="Read-only after this time: students see it but cannot submit."
    )
    prerequisites = models.ManyToManyField(
        "self",
        through="Prerequisite",
        through_fields=("project", "required"),
        symmetrical=False,
        related_name="unlocks",
        blank=True,
        help_text="Challenges a student must solve before this one opens to them.",
    )
    flag_hash = models.CharField(
        max_length=128, blank=True, editable=False, help_text="Salted digest; the flag itself is never stored."
    )
    is_published = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        db_table = "projects"
        verbose_name = "challenge"
        verbose_name_plural = "challenges"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"],
                name="uniq_projects_tenant_slug",
                violation_error_message="A challenge with this slug already exists in this class.",
            ),
            models.CheckConstraint(condition=models.Q(points__gte=0), name="chk_points_positive"),
            models.CheckConstraint(
                condition=models.Q(difficulty__in=Difficulty.values), name="chk_projects_difficulty"
            ),
            models.CheckConstraint(condition=models.Q(scoring__in=Scoring.values), name="chk_projects_scoring"),
            models.CheckConstraint(
                condition=models.Q(decay_function__in=Decay.values), name="chk_projects_decay_function"
            ),
            models.CheckConstraint(
                condition=models.Q(scoring="STATIC")
                | models.Q(
                    initial_points__isnull=False,
                    minimum_points__isnull=False,
                    decay__isnull=False,
                    minimum_points__gte=0,
                    minimum_points__lte=models.F("initial_points"),
                    decay__gt=0,
                ),
                name="chk_projects_dynamic_values",
                violation_error_message="A dynamic challenge needs an initial value, a minimum from 0 up to the "
                "initial value, and a decay above 0.",
            ),
            models.CheckConstraint(
                condition=models.Q(opens_at__isnull=True)
                | models.Q(closes_at__isnull=True)
                | models.Q(closes_at__gt=models.F("opens_at")),
                name="chk_projects_window",
                violation_error_message="The close time must come after the open time.",
            ),
        ]
        indexes = [
            models.Index(fields=["category", "difficulty"], name="idx_projects_category_difficulty"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_flag(self) -> bool:
        return bool(self.flag_hash)

    def set_flag(self, flag: str | None) -> None:
        """Store the digest of `flag` (blank or None removes it: write-ups only)."""
        self.flag_hash = make_flag_hash(flag) if flag and flag.strip() else ""

    def check_flag(self, flag: str) -> bool:
        return self.has_flag and check_flag(flag, self.flag_hash)

    @property
    def is_dynamic(self) -> bool:
        return self.scoring == Scoring.DYNAMIC

    def value_with(self, solvers: int) -> int:
        """The challenge's value once `solvers` students have solved it (its points when static)."""
        if not self.is_dynamic:
            return self.points
        return dynamic_value(
            initial=self.initial_points,
            minimum=self.minimum_points,
            decay=self.decay,
            function=self.decay_function,
            solvers=solvers,
        )

    def is_open_at(self, moment) -> bool:
        """Shown to students (the open time has come)."""
        return self.opens_at is None or moment >= self.opens_at

    def is_closed_at(self, moment) -> bool:
        """Read-only (the close time has passed)."""
        return self.closes_at is not None and moment >= self.closes_at

    def clean(self):
        super().clean()
        errors = {}
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            errors["closes_at"] = "The close time must come after the open time."
        if self.scoring == Scoring.DYNAMIC:
            for name in ("initial_points", "minimum_points", "decay"):
                if getattr(self, name) is None:
                    errors[name] = "A dynamic challenge needs this."
            if self.minimum_points is not None and self.minimum_points < 0:
                errors["minimum_points"] = "The minimum is 0 or more."
            elif (
                self.minimum_points is not None
                and self.initial_points is not None
                and self.minimum_points > self.initial_points
            ):
                errors["minimum_points"] = "The minimum cannot be above the initial value."
            if self.decay is not None and self.decay <= 0:
                errors["decay"] = "The decay is 1 or more."
        if errors:
            raise ValidationError(errors)


class Prerequisite(models.Model):
    """`project` opens to a student once they have solved `required`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prerequisite_links")
    required = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "project_prerequisites"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "required"],
                name="uniq_project_prerequisites",
                violation_error_message="This challenge already requires that one.",
            ),
            models.CheckConstraint(
                condition=~models.Q(project=models.F("required")),
                name="chk_prerequisite_not_itself",
                violation_error_message="A challenge cannot require itself.",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "project"], name="idx_prerequisites_tenant")]

    def __str__(self) -> str:
        return f"Prerequisite {self.required_id} of challenge {self.project_id}"


def attachment_storage():
    """The storage of challenge files: STORAGES["attachments"] (a local folder unless configured)."""
    return storages["attachments"]


def attachment_path(instance: "ChallengeFile", filename: str) -> str:
    """<tenant>/<challenge>/<random>/<name>: never guessed, never two files in one place."""
    return f"{instance.tenant_id}/{instance.project_id}/{uuid.uuid4().hex}/{PurePosixPath(filename).name}"


class ChallengeFile(models.Model):
    """A file attached to a challenge, downloaded by the students who can see it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=200, help_text="The name students download it under.")
    file = models.FileField(storage=attachment_storage, upload_to=attachment_path, max_length=400)
    size = models.BigIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    uploaded_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "challenge_files"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                name="uniq_challenge_files_name",
                violation_error_message="This challenge already has a file with this name.",
            ),
            models.CheckConstraint(condition=models.Q(size__gt=0), name="chk_challenge_files_not_empty"),
        ]
        indexes = [models.Index(fields=["tenant", "project"], name="idx_challenge_files_tenant")]

    def __str__(self) -> str:
        return self.name


class Hint(models.Model):
    """A hint of a challenge: free, or costing points from the student's points for that challenge."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="hints")
    position = models.PositiveSmallIntegerField(default=1, help_text="Hints are shown in this order.")
    text = models.TextField(help_text="Markdown; rendered sanitised.")
    cost = models.IntegerField(default=0, help_text="Points taken when a student unlocks it (0: free).")

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "hints"
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cost__gte=0),
                name="chk_hints_cost_positive",
                violation_error_message="A cost is 0 or more.",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "project"], name="idx_hints_tenant_project")]

    def __str__(self) -> str:
        return f"Hint {self.position}"
