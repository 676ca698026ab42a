"""Django's PostgreSQL backend, its statements counted for /metrics (ENGINE "vulhub.ops.postgresql")."""
