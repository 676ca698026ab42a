"""Changes made outside scoring's services that move points, each kept in step and recorded as an event.

Whatever makes them (the admin, a command, the ORM), these follow Django's model
signals, inside the change's own transaction:

- **A challenge deleted.** Its submissions go with it (the cascade), so its solvers lose
  its points: their leaderboard rows and automatic badges are brought up to date, and a
  ProjectDeleted event tells a replay to drop the challenge's submissions.
- **A challenge's points changed.** A grade is a share of what the challenge is worth,
  so every approved submission of it is scored again at the new value (a right flag
  earns the new points, a write-up graded 60 earns 60% of them); the solvers' rows and
  badges follow, and a ProjectPointsChanged event tells a replay to do the same.
- **A student deleted.** Their submissions and row go with them (the cascade; the rank
  trigger moves the students below up), and a StudentDeleted event tells a replay to
  drop their submissions. The dynamic challenges they had solved lose a solver: their
  value and the other solvers' points follow (scoring.dynamic).
- **A dynamic challenge saved** (created, its decay changed, switched to dynamic): its
  value is set from its solvers (scoring.dynamic.settle), whatever `points` was given.

What moves no points records nothing here: unpublishing or publishing a challenge
(its solves keep counting: a student keeps what they earned while it is hidden),
deactivating a student (their points and place stay; deleting them takes both away),
revoking a badge (badges carry no points). A tenant's deletion takes all its rows.
"""

from contextvars import ContextVar

from django.db.models import F, Value
from django.db.models.signals import post_delete, post_init, post_save, pre_delete, pre_save

from challenges.models import Project
from tenants.models import Tenant, User

from . import dynamic, leaderboard, services, team_board
from .models import Submission, Team
from .signals import project_deleted, project_rescored, student_deleted

APPROVED = Submission.Status.APPROVED
# tenants being deleted in this context: their rows all go, nothing is scored again
DELETING: ContextVar[frozenset] = ContextVar("scoring_deleting_tenants", default=frozenset())


def _solvers(project: Project) -> list[int]:
    approved = Submission.objects.filter(project_id=project.pk, status=APPROVED)
    return sorted(set(approved.values_list("user_id", flat=True)))


def _rescore_students(tenant_id: int, user_ids: list[int]) -> None:
    """Their leaderboard rows and automatic badges, from their submissions as they are now; the teams' rows too."""
    for user in User.objects.filter(tenant_id=tenant_id, pk__in=user_ids).order_by("pk"):
        services.after_scoring(user=user, actor=None)
    _rescore_teams(tenant_id)


def _rescore_teams(tenant_id: int) -> None:
    """The tenant's team standings from the answers as they are now (one statement; none without teams)."""
    if Team.objects.for_tenant(tenant_id).exists():
        team_board.rebuild(tenant_id)
        leaderboard.CACHE.invalidate_on_commit(tenant_id)  # member counts move with a deleted student


def _before_tenant_delete(sender, instance: Tenant, **kwargs) -> None:
    instance._vulhub_deleting = DELETING.set(DELETING.get() | {instance.pk})


def _after_tenant_delete(sender, instance: Tenant, **kwargs) -> None:
    DELETING.reset(instance._vulhub_deleting)


def _before_project_delete(sender, instance: Project, **kwargs) -> None:
    instance._vulhub_solvers = _solvers(instance)


def _after_project_delete(sender, instance: Project, **kwargs) -> None:
    if instance.tenant_id in DELETING.get():
        return
    solvers = getattr(instance, "_vulhub_solvers", [])
    _rescore_students(instance.tenant_id, solvers)
    project_deleted.send(sender=Project, project=instance, solvers=solvers, actor=None)


def _remember_points(sender, instance: Project, **kwargs) -> None:
    """The points as loaded (or last saved): a save compares with them, with no query of its own."""
    loaded = instance.pk is not None and "points" not in instance.get_deferred_fields()  # never a query
    instance._vulhub_points_before = instance.points if loaded else None


def _before_project_save(sender, instance: Project, raw=False, **kwargs) -> None:
    if instance.is_dynamic and instance.pk is not None and not raw:
        # the approvals lock before the row's: the order a solve takes them in (scoring.dynamic)
        dynamic.lock_solves(instance.pk)


def _after_project_save(sender, instance: Project, created=False, raw=False, update_fields=None, **kwargs) -> None:
    if instance.is_dynamic and not raw:
        dynamic.settle(instance)
        return
    before = getattr(instance, "_vulhub_points_before", None)
    instance._vulhub_points_before = instance.points
    if raw or created or before is None or before == instance.points:
        return
    if update_fields is not None and "points" not in update_fields:
        return
    approved = Submission.objects.filter(project_id=instance.pk, status=APPROVED)
    solvers = sorted(set(approved.values_list("user_id", flat=True)))
    # round(points * score / 100), halves up (services.points_for), in integer SQL
    rescored = approved.update(points_awarded=(Value(instance.points) * F("score") + 50) / 100)
    _rescore_students(instance.tenant_id, solvers)
    project_rescored.send(sender=Project, project=instance, previous_points=before, rescored=rescored, actor=None)


def _before_user_delete(sender, instance: User, **kwargs) -> None:
    if instance.tenant_id in (None, *DELETING.get()) or instance.role != User.Role.STUDENT:
        return
    solved = Submission.objects.filter(user_id=instance.pk, status=APPROVED, project__scoring=Project.Scoring.DYNAMIC)
    instance._vulhub_dynamic_solved = sorted(set(solved.values_list("project_id", flat=True)))
    for project_id in instance._vulhub_dynamic_solved:  # before the cascade locks their rows: the lock order
        dynamic.lock_solves(project_id)


def _after_user_delete(sender, instance: User, **kwargs) -> None:
    if instance.tenant_id not in (None, *DELETING.get()) and instance.role == User.Role.STUDENT:
        student_deleted.send(sender=User, user=instance, actor=None)
        _rescore_teams(instance.tenant_id)  # their answers went: a teammate's may be the team's first now
        for project in Project.objects.filter(pk__in=getattr(instance, "_vulhub_dynamic_solved", [])).order_by("pk"):
            dynamic.settle(project)


def connect() -> None:
    pre_delete.connect(_before_tenant_delete, sender=Tenant, dispatch_uid="scoring.changes.tenant_pre_delete")
    post_delete.connect(_after_tenant_delete, sender=Tenant, dispatch_uid="scoring.changes.tenant_post_delete")
    pre_delete.connect(_before_project_delete, sender=Project, dispatch_uid="scoring.changes.project_pre_delete")
    post_delete.connect(_after_project_delete, sender=Project, dispatch_uid="scoring.changes.project_post_delete")
    post_init.connect(_remember_points, sender=Project, dispatch_uid="scoring.changes.project_post_init")
    pre_save.connect(_before_project_save, sender=Project, dispatch_uid="scoring.changes.project_pre_save")
    post_save.connect(_after_project_save, sender=Project, dispatch_uid="scoring.changes.project_post_save")
    pre_delete.connect(_before_user_delete, sender=User, dispatch_uid="scoring.changes.user_pre_delete")
    post_delete.connect(_after_user_delete, sender=User, dispatch_uid="scoring.changes.user_post_delete")
