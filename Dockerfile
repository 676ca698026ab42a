# The VulHub web app under gunicorn. Used by docker-compose.yml.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# PostgreSQL 15 for the operator commands: the client tools (pg_dump, pg_restore,
# pg_basebackup) and the server binaries `pitr restore` recovers a base backup with (no
# cluster of its own: Debian's default one is not created).
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/vulhub.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client postgresql-15 locales \
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

RUN mkdir -p var/backups var/pitr && useradd --create-home --uid 1000 vulhub && chown -R vulhub /app
USER vulhub

EXPOSE 8000
# Migrations are a job of their own (docker-compose.yml: the migrate service, before any
# web container): `docker run … python manage.py migrate --no-input` first, when run alone.
CMD ["sh", "-c", "exec gunicorn vulhub.wsgi --workers ${GUNICORN_WORKERS:-2} --bind 0.0.0.0:8000 --access-logfile -"]
