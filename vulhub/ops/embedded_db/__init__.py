"""A PostgreSQL backend that starts an embedded server (pgserver) on first use.

Used when DATABASE_URL is unset, so a new machine needs no database server: the
data lives under var/pgdata and the server keeps running between commands, shared
by runserver, manage.py commands and the test suite. `make db-stop` stops it.
"""
