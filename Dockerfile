# The VulHub web app under gunicorn. Used by docker-compose.yml.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# PostgreSQL 15 for the operator commands: the client tools (pg_dump, pg_restore), the
# server binaries `pitr restore` recovers and verifies a restored directory with (no
# cluster of its own: Debian's default one is not created), and pgBackRest, which reads
# the database image's repository (the pitr volume) for `pitr window` and `pitr restore`.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/vulhub.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client postgresql-15 pgbackrest locales \
    && rm -rf /var/lib/apt/lists/* \
    && sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen && locale-gen
# en_US.UTF-8 above: the database image's default locale, which a data directory restored
# here (`pitr restore`) needs to start.

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time and served by WhiteNoise (no CDN).
RUN DEBUG=false SECRET_KEY=build-only-not-a-secret ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://build@localhost/build python manage.py collectstatic --no-input

# The repository's files belong to the database image's postgres account (uid and gid
# 999) and are readable by its group: the web user joins that group to read them.
RUN mkdir -p var/backups /var/log/pgbackrest && groupadd --gid 999 pgrepo \
    && useradd --create-home --uid 1000 --groups pgrepo vulhub && chown -R vulhub /app /var/log/pgbackrest
USER vulhub

EXPOSE 8000
# gunicorn reads gunicorn.conf.py from /app: every worker's metrics summed by /metrics.
# Migrations are a job of their own (docker-compose.yml: the migrate service, before any
# web container): `docker run … python manage.py migrate --no-input` first, when run alone.
CMD ["sh", "-c", "exec gunicorn vulhub.wsgi --workers ${GUNICORN_WORKERS:-2} --bind 0.0.0.0:8000 --access-logfile -"]
