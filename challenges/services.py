"""Writes on challenges. Each runs in one transaction with its records."""

from audit.api import recorded

from .models import Project
from .selectors import CATALOGUE
from .signals import project_published, project_unpublished


@recorded
def project_publish(*, project: Project, actor) -> Project:
    """Make a challenge visible to students (no-op when it already is)."""
    if project.is_published:
        return project
    project.is_published = True
    project.save(update_fields=["is_published", "updated_at"])
    project_published.send(sender=Project, project=project, actor=actor)
    CATALOGUE.invalidate_on_commit(project.tenant_id)
    return project


@recorded
def project_unpublish(*, project: Project, actor) -> Project:
    """Hide a challenge from students; their submissions and points stay."""
    if not project.is_published:
        return project
    project.is_published = False
    project.save(update_fields=["is_published", "updated_at"])
    project_unpublished.send(sender=Project, project=project, actor=actor)
    CATALOGUE.invalidate_on_commit(project.tenant_id)
    return project


@recorded
def project_save(*, project: Project, flag: str | None = None, remove_flag: bool = False) -> Project:
    """Create or edit a challenge (by staff), setting or replacing its flag when one is given.

    The students' cached catalogue follows on commit.
    """
    if remove_flag:
        project.set_flag(None)
    elif flag:
        project.set_flag(flag)
    project.save()
    CATALOGUE.invalidate_on_commit(project.tenant_id)
    return project
