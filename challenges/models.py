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


class Project(models.Model):
    """A challenge: what students solve, with a flag or a write-up."""

    Difficulty = Difficulty

    # tenant lookups use uniq_projects_tenant_slug, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="projects", db_index=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True, help_text="Markdown; rendered sanitised.")
    category = models.CharField(max_length=100)
    difficulty = models.CharField(max_length=12, choices=Difficulty.choices)
    points = models.IntegerField(default=100)
    flag_hash = models.CharField(
        max_length=128, blank=True, editable=False, help_text="Salted digest; the flag itself is never stored."
    )
    is_published = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        db_table = "projects"
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
