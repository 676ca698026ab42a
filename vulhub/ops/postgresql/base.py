"""Django's PostgreSQL backend with its statements and connections counted (docs/monitoring.md).

The counters are django-prometheus' (django_db_execute_total, django_db_errors_total,
django_db_new_connections_total, django_db_new_connection_errors_total), so its
dashboards read them. Its own backend also times every statement into a histogram and
looks up each labelled counter anew per statement: about 14 µs a statement here, a few
per cent of a cached page. This one counts with children found once per connection
(about 1 µs) and leaves statement times to pg_stat_statements (`manage.py dbstats`).
"""

from django.conf import settings
from django.db.backends.postgresql import base
from django_prometheus.db import connection_errors_total, connections_total, errors_total, execute_total


def counting(cursor_class, alias: str, vendor: str):
    """`cursor_class` with each execute() and executemany() counted, and their errors by type."""
    executed = execute_total.labels(alias, vendor)

    class CountingCursor(cursor_class):
        def execute(self, *args, **kwargs):
            executed.inc()
            try:
                return super().execute(*args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise

        def executemany(self, query, params_seq, *args, **kwargs):
            params_seq = list(params_seq)
            executed.inc(len(params_seq))
            try:
                return super().executemany(query, params_seq, *args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise

    return CountingCursor


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if settings.METRICS_ENABLED:
            params["cursor_factory"] = counting(params["cursor_factory"], self.alias, self.vendor)
        return params

    def get_new_connection(self, conn_params):
        if not settings.METRICS_ENABLED:
            return super().get_new_connection(conn_params)
        connections_total.labels(self.alias, self.vendor).inc()
        try:
            return super().get_new_connection(conn_params)
        except Exception:
            connection_errors_total.labels(self.alias, self.vendor).inc()
            raise
