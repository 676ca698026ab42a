"""Walk the audit hash chains and find the first broken link of each."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from .models import AuditChainHead, AuditLog


@dataclass(frozen=True)
class Break:
    chain: int
    row_id: int | None
    chain_seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row id {self.row_id} (link {self.chain_seq})" if self.row_id else "end of chain"
        return f"chain {self.chain}: {where}: {self.problem}"


@dataclass
class ChainReport:
    chain: int
    rows: int = 0
    broken: Break | None = None


def chain_keys(tenant_id: int | None = None, *, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    keys = set(AuditChainHead.objects.using(using).values_list("chain_key", flat=True))
    keys |= set(
        AuditLog.objects.using(using)
        .annotate(key=Coalesce("tenant_id", Value(0)))
        .values_list("key", flat=True)
        .order_by()  # not the model's ordering: DISTINCT over the keys only
        .distinct()
    )
    if tenant_id is not None:
        keys &= {tenant_id}
    return sorted(keys)


def chain_sizes(keys: list[int], *, using: str = DEFAULT_DB_ALIAS) -> dict[int, int]:
    rows = (
        AuditLog.objects.using(using)
        .annotate(key=Coalesce("tenant_id", Value(0)))
        .filter(key__in=keys)
        .values_list("key")
        .annotate(n=Count("id"))
    )
    return dict(rows)


def _rows(key: int, using: str) -> Iterator[tuple]:
    quoted = connections[using].ops.quote_name(AuditLog._meta.db_table)
    return (
        AuditLog.objects.using(using)
        .annotate(key=Coalesce("tenant_id", Value(0)))
        .filter(key=key)
        .annotate(computed=RawSQL(f"audit_logs_row_hash({quoted})", []))  # noqa: S611  (no input)
        .order_by("chain_seq")
        .values_list("id", "chain_seq", "prev_hash", "row_hash", "computed")
        .iterator(chunk_size=5000)
    )


def verify_chain(key: int, on_row: Callable[[], None] = lambda: None, *, using: str = DEFAULT_DB_ALIAS) -> ChainReport:
    """Walk chain `key` of database alias `using` (a restore checks another database)."""
    report = ChainReport(chain=key)
    expected_seq, expected_prev = 1, ""
    for row_id, seq, prev_hash, row_hash, computed in _rows(key, using):
        report.rows += 1
        on_row()
        if report.broken is not None:
            continue
        if seq != expected_seq:
            report.broken = Break(
                key, row_id, seq, f"expected link {expected_seq}: rows before it were deleted or reordered"
            )
        elif prev_hash != expected_prev:
            report.broken = Break(key, row_id, seq, "does not chain onto the row before it (deleted or reordered)")
        elif row_hash != computed:
            report.broken = Break(key, row_id, seq, "edited: its content no longer matches its hash")
        expected_seq, expected_prev = expected_seq + 1, row_hash
    if report.broken is None:
        head = AuditChainHead.objects.using(using).filter(chain_key=key).first()
        last_seq = expected_seq - 1
        if head is None and last_seq:
            report.broken = Break(key, None, None, "the chain has no head row: audit_chain_heads was tampered with")
        elif head is not None and (head.last_seq, head.last_hash) != (last_seq, expected_prev):
            report.broken = Break(
                key,
                None,
                None,
                f"ends at link {last_seq} but its head says {head.last_seq}: rows at the end were deleted",
            )
    return report
