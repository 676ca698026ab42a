from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from vulhub.lib.tenancy import TenantQuerySet


class TenantQuerySetBase(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def for_host(self, host: str):
        """The active tenant served on `host` (a request's host, port stripped).

        Compares lower(domain), the expression uniq_tenants_domain_ci indexes.
        """
        return self.active().alias(domain_lower=Lower("domain")).filter(domain_lower=host.lower())


class RegistrationMode(models.TextChoices):
    OPEN = "OPEN", "Open to anyone"
    INVITE = "INVITE", "With an invite code"
    CLOSED = "CLOSED", "Closed (accounts made by staff)"


class TeamMode(models.TextChoices):
    OFF = "OFF", "Off: students play alone"
    OPTIONAL = "OPTIONAL", "Optional: students may play in teams"
    REQUIRED = "REQUIRED", "Required: students answer only as a team member"


class Tenant(models.Model):
    RegistrationMode = RegistrationMode
    TeamMode = TeamMode

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    domain = models.CharField(max_length=253, help_text="Host name the tenant is served on, e.g. class.example.edu.")
    settings = models.JSONField(default=dict, blank=True, help_text="Theme and other options.")
    registration_mode = models.CharField(max_length=10, choices=RegistrationMode.choices, default=RegistrationMode.OPEN)
    is_active = models.BooleanField(default=True)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        db_default="UTC",  # rows written in SQL get it too
        help_text="The class's time zone: the site shows every time in it.",
    )
    event_starts_at = models.DateTimeField(
        null=True, blank=True, help_text="No submissions before this time (empty: no start)."
    )
    event_ends_at = models.DateTimeField(
        null=True, blank=True, help_text="No submissions after this time (empty: no end)."
    )
    scoreboard_freeze_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="From this time students see the standings as they were then; instructors see live ones. "
        "Empty the field to unfreeze.",
    )
    public_profiles = models.BooleanField(
        default=False,
        db_default=False,  # rows written in SQL get it too
        help_text="Each student has a page the class can open (name, points, rank, badges, solves, progress), "
        "linked from the leaderboard. Off: only the student and the staff open it.",
    )
    team_mode = models.CharField(
        max_length=10,
        choices=TeamMode.choices,
        default=TeamMode.OFF,
        db_default=TeamMode.OFF,  # rows written in SQL get it too
        help_text="Whether students play in teams. A team's standings sit beside the students' own.",
    )
    team_size_max = models.PositiveSmallIntegerField(
        default=4,
        db_default=4,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        verbose_name="team size",
        help_text="The most members a team may have (1 to 50).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySetBase.as_manager()

    class Meta:
        db_table = "tenants"
        verbose_name = "class"
        verbose_name_plural = "class settings"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("domain"), name="uniq_tenants_domain_ci"),
            models.CheckConstraint(
                condition=models.Q(registration_mode__in=RegistrationMode.values),
                name="chk_tenants_registration_mode",
            ),
            models.CheckConstraint(
                condition=models.Q(event_starts_at__isnull=True)
                | models.Q(event_ends_at__isnull=True)
                | models.Q(event_ends_at__gt=models.F("event_starts_at")),
                name="chk_tenants_event_window",
                violation_error_message="The event must end after it starts.",
            ),
            models.CheckConstraint(condition=models.Q(team_mode__in=TeamMode.values), name="chk_tenants_team_mode"),
            models.CheckConstraint(
                condition=models.Q(team_size_max__gte=1, team_size_max__lte=50),
                name="chk_tenants_team_size",
                violation_error_message="A team has 1 to 50 members.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UserQuerySet(TenantQuerySet):
    def with_email(self, email: str):
        """Users with this e-mail in any letter case (served by the lower(email) indexes)."""
        return self.alias(email_lower=Lower("email")).filter(email_lower=email.strip().lower())

    def students(self):
        return self.filter(role=User.Role.STUDENT)

    def staff(self):
        return self.filter(role__in=User.STAFF_ROLES)


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):
    use_in_migrations = True

    def get_by_natural_key(self, email):
        # Natural key of platform accounts (createsuperuser); tenant users log in
        # through tenants.backends.TenantEmailBackend, which knows the tenant.
        return self.with_email(email).get(tenant__isnull=True)

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra["is_superuser"] = True
        extra.setdefault("role", User.Role.ADMIN)
        return self._create_user(email, password, **extra)


class UserRole(models.TextChoices):
    ADMIN = "ADMIN", "Tenant admin"
    INSTRUCTOR = "INSTRUCTOR", "Instructor"
    STUDENT = "STUDENT", "Student"


class User(AbstractBaseUser, PermissionsMixin):
    """A person on one tenant (platform superusers may have none), logging in by e-mail."""

    Role = UserRole
    STAFF_ROLES = (Role.ADMIN, Role.INSTRUCTOR)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="users", null=True, blank=True)
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STUDENT)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        verbose_name = "person"
        verbose_name_plural = "people"
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "tenant",
                name="uniq_users_tenant_email_ci",
                violation_error_message="A user with this e-mail already exists in this class.",
            ),
            # NULLs are distinct in the constraint above, so platform accounts get their own.
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(tenant__isnull=True),
                name="uniq_users_platform_email_ci",
            ),
            models.CheckConstraint(
                condition=models.Q(tenant__isnull=False) | models.Q(is_superuser=True),
                name="chk_users_tenant_unless_superuser",
            ),
            # and the other way round: a tenant's user is never a superuser, whatever writes the row
            models.CheckConstraint(
                condition=models.Q(tenant__isnull=True) | models.Q(is_superuser=False),
                name="chk_users_superuser_has_no_tenant",
                violation_error_message="A user of a tenant cannot be a superuser.",
            ),
            models.CheckConstraint(condition=models.Q(role__in=UserRole.values), name="chk_users_role"),
        ]

    def __str__(self) -> str:
        """ "Alice Anderson (alice@example.edu)": two students may share a name, never an e-mail."""
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.email})" if name else self.email

    @property
    def is_staff(self) -> bool:
        """Instructors and tenant admins reach the admin; derived from the role."""
        return self.is_superuser or self.role in self.STAFF_ROLES

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email


class RateLimitScope(models.TextChoices):
    REGISTRATION_IP = "REGISTRATION_IP", "Registration, per client address"
    PASSWORD_RESET_IP = "PASSWORD_RESET_IP", "Password reset, per client address"
    PASSWORD_RESET_EMAIL = "PASSWORD_RESET_EMAIL", "Password reset, per e-mail address"


class RateLimitHitQuerySet(TenantQuerySet):
    def for_key(self, *, scope: str, key: str):
        return self.filter(scope=scope, key=key)

    def since(self, moment):
        return self.filter(created_at__gt=moment)


class RateLimitHit(models.Model):
    """One counted attempt at a limited action (tenants.rate_limits).

    Counted in the database rather than the cache, so the limits hold when Redis is
    down or flushed; rows older than the longest window are pruned as new ones come.
    """

    Scope = RateLimitScope

    # no index of its own: idx_rate_limit_hits_key leads with the tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    scope = models.CharField(max_length=20, choices=Scope.choices)
    # a client address (for IPv6 its /64 network), or a keyed hash of an e-mail address, never the address
    key = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    objects = RateLimitHitQuerySet.as_manager()

    class Meta:
        db_table = "rate_limit_hits"
        indexes = [
            models.Index(fields=["tenant", "scope", "key", "created_at"], name="idx_rate_limit_hits_key"),
            models.Index(fields=["tenant", "created_at"], name="idx_rate_limit_hits_age"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=RateLimitScope.values), name="chk_rate_limit_hits_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} at {self.created_at:%Y-%m-%d %H:%M:%S}"
