"""Log every database query slower than settings.SLOW_QUERY_MS (0: off).

`install` runs on `connection_created` (wired in `OpsConfig.ready`, vulhub/ops/apps.py) and puts
`log_slow_query` around every query of that connection: ORM and raw cursors alike.
A record names the duration, the SQL (never its parameters: they may hold secrets),
and the request id and tenant of the audit context, so a slow page can be traced
back from the log. The wrapper never changes what a query returns or raises.
"""

import logging
import time

from django.conf import settings

from audit.api import current_context

logger = logging.getLogger("vulhub.slow_queries")

# Characters of SQL kept in a record: enough to recognise the query, not a bulk insert.
MAX_SQL_CHARS = 1000


def log_slow_query(execute, sql, params, many, context):
    """Execute wrapper (https://docs.djangoproject.com/en/5.2/topics/db/instrumentation/)."""
    threshold_ms = settings.SLOW_QUERY_MS
    if not threshold_ms:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        # Also when the query failed: a statement timeout is a slow query too.
        duration_ms = (time.perf_counter() - started) * 1000
        if duration_ms > threshold_ms:
            _log(duration_ms, sql, many, context)


def _log(duration_ms, sql, many, context):
    audit = current_context()
    # One line per record, whatever the SQL's layout.
    text = " ".join((sql if isinstance(sql, str) else repr(sql)).split())
    if len(text) > MAX_SQL_CHARS:
        text = text[:MAX_SQL_CHARS] + "…"
    logger.warning(
        "Slow query: %.1f ms%s on %s, request_id=%s tenant_id=%s: %s",
        duration_ms,
        " (executemany)" if many else "",
        context["connection"].alias,
        audit.request_id or "-",
        audit.tenant_id if audit.tenant_id is not None else "-",
        text,
        extra={
            "duration_ms": round(duration_ms, 1),
            "sql": text,
            "request_id": audit.request_id,
            "tenant_id": audit.tenant_id,
        },
    )


def install(sender, connection, **kwargs):
    """connection_created receiver: wrap the new connection's queries, once."""
    if log_slow_query not in connection.execute_wrappers:
        # First in the list is the outermost wrapper. It also keeps us out of the way of
        # `with connection.execute_wrapper(...)`, which pops the *last* wrapper on exit:
        # appended while such a block opens the connection, ours would be the one popped.
        connection.execute_wrappers.insert(0, log_slow_query)
