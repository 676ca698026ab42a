"""Prerequisites between challenges: which ones a challenge requires, never in a cycle.

A cycle (A requires B, B requires A; or longer; or a challenge requiring itself) would
lock its challenges for every student forever, so it is refused where prerequisites
are chosen (the challenge admin) with the cycle named. Edits of one tenant's
prerequisites take its lock (PREREQUISITES_LOCK) before the check and hold it to
commit, so two instructors saving A -> B and B -> A at once cannot close one between them.
"""

from collections.abc import Iterable

from django.db import connection

from audit import api as audit

from .models import Prerequisite, Project
from .selectors import CATALOGUE

# advisory lock class of a tenant's prerequisites ("VHPQ")
PREREQUISITES_LOCK = 0x56485051


def lock_tenant(tenant_id: int) -> None:
    """Hold the tenant's prerequisite edits to this transaction (until it commits or rolls back)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PREREQUISITES_LOCK, tenant_id])


def required_ids(project: Project) -> list[int]:
    """The pks of the challenges `project` requires."""
    return list(
        Prerequisite.objects.for_tenant(project.tenant_id).filter(project=project).values_list("required_id", flat=True)
    )


def find_cycle(*, tenant_id: int, project_id: int, required: Iterable[int]) -> list[int] | None:
    """The cycle `project_id` would close by requiring exactly `required`, as a path of pks, else None.

    The path starts and ends with `project_id`: [A, B, C, A] reads "A requires B, B
    requires C, C requires A". One query: the tenant's other prerequisite rows.
    """
    graph: dict[int, set[int]] = {}
    rows = (
        Prerequisite.objects.for_tenant(tenant_id)
        .exclude(project_id=project_id)
        .values_list("project_id", "required_id")
    )
    for source, target in rows:
        graph.setdefault(source, set()).add(target)
    graph[project_id] = set(required)
    # depth-first from the project, along "requires", looking for the way back to it
    stack = [(project_id, [project_id])]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        for target in sorted(graph.get(node, ())):
            if target == project_id:
                return [*path, project_id]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def describe_cycle(path: list[int], names: dict[int, str]) -> str:
    """ "Cookie Jar requires SQL Basics, which requires Cookie Jar" for a path of pks."""
    if len(path) == 2:
        return f"{names[path[0]]} cannot require itself"
    text = f"{names[path[0]]} requires {names[path[1]]}"
    for node in path[2:]:
        text += f", which requires {names[node]}"
    return text


@audit.recorded
def prerequisites_set(*, project: Project, required: Iterable[Project]) -> bool:
    """Make `project` require exactly `required` (challenges of its tenant); whether anything changed.

    The caller has checked for cycles under lock_tenant() in this transaction (the admin
    form does). Each added and removed row is audited; the students' catalogue follows
    on commit.
    """
    wanted = {other.pk for other in required if other.tenant_id == project.tenant_id and other.pk != project.pk}
    current = set(required_ids(project))
    removed, added = current - wanted, wanted - current
    if removed:
        audit.delete_recorded(
            Prerequisite.objects.for_tenant(project.tenant_id).filter(project=project, required_id__in=removed)
        )
    if added:
        audit.bulk_create_recorded(
            Prerequisite,
            [Prerequisite(tenant_id=project.tenant_id, project=project, required_id=pk) for pk in sorted(added)],
        )
    if removed or added:
        CATALOGUE.invalidate_on_commit(project.tenant_id)
    return bool(removed or added)
