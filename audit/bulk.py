"""Recorded bulk writes: bulk_create, queryset update and delete, with audit rows in bulk.

Django sends no signals for bulk_create and queryset.update(); these helpers do
the write and record one audit row per changed row, in a fixed handful of queries
whatever the number of rows. Admin actions, imports and seeding use them.
"""

from django.db.models import Expression, F, Model, QuerySet

from .receivers import current_values, diff, remember_loaded, tenant_of
from .recording import audit_row, in_bulk, write_audit


def _record(action: str, instance: Model, changes: dict) -> None:
    write_audit(
        audit_row(
            action=action,
            object_type=instance._meta.label_lower,
            object_id=instance.pk,
            object_text=str(instance),
            changes=changes,
            tenant_id=tenant_of(instance),
        )
    )


def bulk_create_recorded(model: type[Model], objs: list[Model], *, batch_size: int = 1000) -> list[Model]:
    """`model.objects.bulk_create(objs)` plus one "create" audit row per object."""
    with in_bulk():
        created = model.objects.bulk_create(objs, batch_size=batch_size)
        for obj in created:
            _record("create", obj, diff(obj, None, current_values(obj)))
            remember_loaded(model, obj)
    return created


def update_recorded(queryset: QuerySet, **values) -> int:
    """`queryset.update(**values)` plus one "update" audit row per row that changed.

    Three queries for any number of rows: lock and read the rows, update them,
    insert their audit rows. Old values are those locked, so nothing slips between.
    """
    model = queryset.model
    names = list(values)
    with in_bulk():
        # whole rows: str() of a row (the audit's object text) may use any field
        # NO KEY UPDATE: foreign-key checks of other transactions need not wait on us
        rows = list(queryset.select_for_update(no_key=True))
        if not rows:
            return 0
        pks = [row.pk for row in rows]
        count = model._base_manager.filter(pk__in=pks).update(**values)
        if any(isinstance(value, Expression | F) for value in values.values()):
            fresh = {o.pk: o for o in model._base_manager.filter(pk__in=pks).only(*names)}
        else:
            fresh = None
        for row in rows:
            before = current_values(row)
            for name in names:
                field = model._meta.get_field(name)
                new = getattr(fresh[row.pk], field.attname) if fresh else values[name]
                setattr(row, field.attname, new.pk if isinstance(new, Model) else new)
            changes = diff(row, before, current_values(row), set(names))
            if changes:
                _record("update", row, changes)
    return count


def delete_recorded(queryset: QuerySet) -> tuple[int, dict]:
    """`queryset.delete()` with the per-row "delete" audit rows written in one INSERT.

    Deleting sends post_delete for each row, cascades included; inside `in_bulk`
    the receivers buffer instead of inserting one row at a time.
    """
    with in_bulk():
        return queryset.delete()
