"""Walk the audit hash chains and find the first broken link of each."""

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
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


def _rows(key: int, using: str, lo: int | None = None, hi: int | None = None) -> Iterator[tuple]:
    """The chain's rows in link order, with each one's hash recomputed; optionally links [lo, hi)."""
    quoted = connections[using].ops.quote_name(AuditLog._meta.db_table)
    rows = AuditLog.objects.using(using).annotate(key=Coalesce("tenant_id", Value(0))).filter(key=key)
    if lo is not None:
        rows = rows.filter(chain_seq__gte=lo)
    if hi is not None:
        rows = rows.filter(chain_seq__lt=hi)
    return (
        rows.annotate(computed=RawSQL(f"audit_logs_row_hash({quoted})", []))  # noqa: S611  (no input)
        .order_by("chain_seq")
        .values_list("id", "chain_seq", "prev_hash", "row_hash", "computed")
        .iterator(chunk_size=5000)
    )


def _walk(key: int, rows: Iterator[tuple], expected_seq: int, expected_prev: str | None) -> Break | None:
    """The first broken row of `rows`, given the link and hash expected of the first one."""
    for row_id, seq, prev_hash, row_hash, computed in rows:
        if seq != expected_seq:
            return Break(key, row_id, seq, f"expected link {expected_seq}: rows before it were deleted or reordered")
        if prev_hash != expected_prev:
            return Break(key, row_id, seq, "does not chain onto the row before it (deleted or reordered)")
        if row_hash != computed:
            return Break(key, row_id, seq, "edited: its content no longer matches its hash")
        expected_seq, expected_prev = expected_seq + 1, row_hash
    return None


# A chain is checked in ranges of this many links, each by one statement that runs in the
# server: a window over the range compares every row with the one before it and with its
# recomputed hash, and only a count and a yes/no come back. Ranges are independent (a
# range also reads the link just before it), so several connections can share one chain.
# The exact broken row is then found by walking the first failing range row by row.
RANGE_LINKS = 50_000

RANGE_CHECK = """
    SELECT count(*) FILTER (WHERE lo_ok),
           coalesce(bool_or(lo_ok AND (chain_seq <> %(base)s + n - 1
                                       OR prev_hash IS DISTINCT FROM expected_prev
                                       OR row_hash IS DISTINCT FROM computed)), false)
    FROM (
        SELECT a.chain_seq, a.prev_hash, a.row_hash, a.chain_seq >= %(lo)s AS lo_ok,
               CASE WHEN a.chain_seq >= %(lo)s THEN audit_logs_row_hash(a) END AS computed,
               lag(a.row_hash, 1, '') OVER w AS expected_prev,
               row_number() OVER w AS n
        FROM audit_logs a
        WHERE coalesce(a.tenant_id, 0) = %(key)s AND a.chain_seq >= %(first)s AND a.chain_seq < %(hi)s
        WINDOW w AS (ORDER BY a.chain_seq)
    ) AS r
"""
# no lower bound on the first range (a link 0 is a break); none above the last one
LOWEST, HIGHEST = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Range:
    chain: int
    lo: int  # first link checked; the link before it is read too
    hi: int  # first link not checked

    @property
    def first(self) -> int:
        return self.lo - 1 if self.lo > 1 else LOWEST


def chain_ranges(key: int, size: int, links: int = RANGE_LINKS) -> list[Range]:
    """Links [1, 1+links), [1+links, 1+2*links)... of chain `key`; the last range is open-ended."""
    count = max(1, -(-size // links))
    return [Range(key, 1 + i * links, 1 + (i + 1) * links if i < count - 1 else HIGHEST) for i in range(count)]


def check_range(chain_range: Range, *, using: str = DEFAULT_DB_ALIAS) -> tuple[int, bool]:
    """(rows in the range, whether any of them breaks the chain)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            RANGE_CHECK,
            {
                "key": chain_range.chain,
                "lo": chain_range.lo,
                "hi": chain_range.hi,
                "first": chain_range.first,
                "base": max(1, chain_range.lo - 1),  # the link expected of the first row read
            },
        )
        rows, broken = cursor.fetchone()
    return rows, broken


def _first_break(chain_range: Range, using: str) -> Break | None:
    """Walk a failing range row by row, starting from the link before it."""
    key, expected_seq, expected_prev = chain_range.chain, 1, ""
    if chain_range.lo > 1:
        before = (
            AuditLog.objects.using(using)
            .annotate(key=Coalesce("tenant_id", Value(0)))
            .filter(key=key, chain_seq=chain_range.lo - 1)
            .values_list("row_hash", flat=True)
            .first()
        )
        # without the link before it, the range's first row is reported as a gap
        expected_seq, expected_prev = (chain_range.lo, before) if before is not None else (chain_range.lo - 1, None)
    lo = chain_range.lo if chain_range.lo > 1 else None
    hi = chain_range.hi if chain_range.hi != HIGHEST else None
    return _walk(key, _rows(key, using, lo, hi), expected_seq, expected_prev)


def _finish(report: ChainReport, failing: list[Range], using: str) -> ChainReport:
    """Name the first broken row, or check the chain's end against its head row."""
    key = report.chain
    chain = AuditLog.objects.using(using).annotate(key=Coalesce("tenant_id", Value(0))).filter(key=key)
    unnumbered = chain.filter(chain_seq__isnull=True).count()
    report.rows += unnumbered
    for chain_range in failing:  # in link order: the first that names a row holds the first break
        report.broken = _first_break(chain_range, using)
        if report.broken is not None:
            break
    if report.broken is None and unnumbered:  # rows outside any range: the walk over the whole chain names one
        report.broken = _walk(key, _rows(key, using), 1, "")
    if report.broken is not None:
        return report
    report.broken = _unrecorded(key, using)
    if report.broken is not None:
        return report
    last = chain.order_by("-chain_seq").values_list("chain_seq", "row_hash").first() or (0, "")
    last_seq, last_hash = report.rows, last[1]
    head = AuditChainHead.objects.using(using).filter(chain_key=key).first()
    if head is None and last_seq:
        report.broken = Break(key, None, None, "the chain has no head row: audit_chain_heads was tampered with")
    elif head is not None and (head.last_seq, head.last_hash) != (last_seq, last_hash):
        report.broken = Break(
            key,
            None,
            None,
            f"ends at link {last_seq} but its head says {head.last_seq}: rows at the end were deleted",
        )
    return report


def _unrecorded(key: int, using: str) -> Break | None:
    """The first row the recorder did not write: marked false, or unmarked after a marked one."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            """
            SELECT a.id, a.chain_seq FROM audit_logs a
            WHERE coalesce(a.tenant_id, 0) = %(key)s AND a.recorded IS NOT TRUE
              AND (a.recorded = false OR a.chain_seq > (
                    SELECT min(b.chain_seq) FROM audit_logs b WHERE coalesce(b.tenant_id, 0) = %(key)s AND b.recorded))
            ORDER BY a.chain_seq LIMIT 1
            """,
            {"key": key},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Break(key, row[0], row[1], "not written by the recorder (audit_record()): inserted some other way")


def verify_chains(
    keys: list[int],
    *,
    sizes: dict[int, int] | None = None,
    on_rows: Callable[[int], None] = lambda n: None,
    executor: Executor | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[int, ChainReport]:
    """Check chains `keys` of database alias `using` (a restore checks another database).

    With an `executor`, ranges are checked on its threads, each on its own connection
    (so they see only committed rows). `on_rows(n)` reports progress as ranges finish.
    """
    sizes = chain_sizes(keys, using=using) if sizes is None else sizes
    ranges = [r for key in keys for r in chain_ranges(key, sizes.get(key, 0), RANGE_LINKS)]

    def check(chain_range: Range, threaded: bool) -> tuple[int, bool]:
        try:
            found = check_range(chain_range, using=using)
        finally:
            if threaded:
                connections[using].close()  # this worker thread's own connection
        on_rows(found[0])
        return found

    if executor is None:
        results = [check(r, False) for r in ranges]
    else:
        results = [f.result() for f in [executor.submit(check, r, True) for r in ranges]]
    reports = {key: ChainReport(chain=key) for key in keys}
    failing: dict[int, list[Range]] = {key: [] for key in keys}
    for chain_range, (rows, broken) in zip(ranges, results, strict=True):
        reports[chain_range.chain].rows += rows
        if broken:
            failing[chain_range.chain].append(chain_range)
    return {key: _finish(reports[key], failing[key], using) for key in keys}


def verify_chain(
    key: int, on_rows: Callable[[int], None] = lambda n: None, *, using: str = DEFAULT_DB_ALIAS
) -> ChainReport:
    """Check chain `key` of database alias `using`, range after range on this connection."""
    return verify_chains([key], on_rows=on_rows, using=using)[key]


def current_heads(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, list]:
    """Each chain's newest link as {chain key: [link, hash]}: what an export keeps."""
    heads = AuditChainHead.objects.using(using).order_by("chain_key").values_list("chain_key", "last_seq", "last_hash")
    return {str(key): [seq, row_hash] for key, seq, row_hash in heads if seq}


def check_exported_heads(exported: dict[str, list], *, using: str = DEFAULT_DB_ALIAS) -> list[Break]:
    """Every link an earlier export saw must still be in its chain with the same hash.

    A rewrite of a chain's history (every hash recomputed, by someone who can write the
    table) keeps each chain self-consistent; it cannot keep a link exported before it.
    """
    problems = []
    for key, (seq, row_hash) in sorted(exported.items(), key=lambda item: int(item[0])):
        found = (
            AuditLog.objects.using(using)
            .annotate(key=Coalesce("tenant_id", Value(0)))
            .filter(key=int(key), chain_seq=seq)
            .values_list("id", "row_hash")
            .first()
        )
        if found is None:
            problems.append(Break(int(key), None, seq, f"link {seq}, exported earlier, is gone"))
        elif found[1] != row_hash:
            problems.append(
                Break(int(key), found[0], seq, f"link {seq} differs from the exported head: history was rewritten")
            )
    return problems
