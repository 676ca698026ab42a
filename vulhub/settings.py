"""VulHub settings, driven by the environment.

Every variable is listed with a comment in `.env.example`. A `.env` file beside
`manage.py` is read when present; real environment variables win over it.
https://docs.djangoproject.com/en/5.2/ref/settings/
"""

import importlib.util
import ipaddress
import json
import os
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # does not override variables already set

# The SECRET_KEY shipped in .env.example; production must never run with it.
EXAMPLE_SECRET_KEY = "insecure-example-key-change-me"


def _bool(name: str, default: bool) -> bool:
    """Read a boolean, refusing anything that is not clearly true or false."""
    raw = env.str(name, default=None)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def _number(name: str, default, parse, what: str):
    raw = env.str(name, default=None)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {what}.") from None


def _int(name: str, default: int, minimum: int = 0) -> int:
    value = _number(name, default, int, "a whole number")
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}.")
    return value


def _float(name: str, default: float) -> float:
    value = _number(name, default, float, "a number")
    if not 0 < value < 3600:  # NaN included
        raise ImproperlyConfigured(f"{name}={value!r} must be a number of seconds above 0.")
    return value


# --- Core -----------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
DEBUG = _bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

if not DEBUG:
    if not SECRET_KEY or SECRET_KEY == EXAMPLE_SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or is the example value while DEBUG is off. "
            "Set SECRET_KEY to a long random string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, "
            "or set DEBUG=true for local development."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is empty while DEBUG is off. Set ALLOWED_HOSTS to the "
            "comma-separated host names VulHub is served on (every tenant's domain)."
        )
elif not SECRET_KEY:
    SECRET_KEY = EXAMPLE_SECRET_KEY

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "health_check",
    "import_export",
    "csp",
    "axes",
    "vulhub.apps.VulhubConfig",
    "vulhub.ops",
    "vulhub.seeding",
    "tenants",
    "challenges",
    "scoring",
    "news",
    "classroom",
    "audit",
]

MIDDLEWARE = [
    "vulhub.middleware.NulFreeHeadersMiddleware",
    "vulhub.middleware.RequestIdMiddleware",
    # /health/ answers before anything looks at the host or the database.
    "vulhub.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every page, the unknown-host 404 included (see Security).
    "vulhub.security.TenantCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    # Times on the tenant's pages and admin in its time zone (Tenant.time_zone).
    "tenants.time_zone.TenantTimeZoneMiddleware",
    # Inside the tenant's transaction: a signed-in user's responses are `private, no-store`.
    "vulhub.middleware.PrivateCacheMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the CSRF check, sessions and messages: an answer POSTed once the session had
    # ended is kept through the login instead of dropped (docs/security.md, "Error paths").
    "vulhub.middleware.KeepAnswersThroughLoginMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vulhub.urls"
WSGI_APPLICATION = "vulhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "vulhub.context_processors.class_summary",
                "vulhub.context_processors.header",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/databases/#postgresql-notes
# DATABASE_URL unset: an embedded PostgreSQL (pgserver) under var/, started on demand.
EMBEDDED_PGDATA = Path(env.str("EMBEDDED_PGDATA", default=str(BASE_DIR / "var" / "pgdata")))


def _database_from_env(variable: str = "DATABASE_URL", embedded_user: str = "vulhub_app") -> dict:
    url = env.str(variable, default="")
    if not url:
        return {
            "ENGINE": "vulhub.ops.embedded_db",
            "NAME": "vulhub",
            "USER": embedded_user,
            "PGDATA": str(EMBEDDED_PGDATA),
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # our own message below says it better
            config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises assorted errors on garbage
        raise ImproperlyConfigured(
            f"{variable} could not be read ({exc}). Expected postgres://USER:PASSWORD@HOST:PORT/NAME."
        ) from None
    if config.get("ENGINE") != "django.db.backends.postgresql" or not config.get("NAME"):
        raise ImproperlyConfigured(
            f"{variable} must point to a PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/NAME."
        )
    # A Unix socket directory is a percent-encoded host (postgres://user@%2Fvar%2Frun%2Fpostgresql/db),
    # as libpq reads it; django-environ leaves it encoded.
    config["HOST"] = unquote(config.get("HOST") or "")
    return config


_db = _database_from_env()
DB_POOL = _bool("DB_POOL", default=False)
_options = dict(_db.get("OPTIONS", {}))
_options.setdefault("connect_timeout", _int("DB_CONNECT_TIMEOUT", default=5, minimum=1))
if DB_POOL:
    # Django's psycopg pool: https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
    _options["pool"] = {
        "min_size": _int("DB_POOL_MIN_SIZE", default=2),
        "max_size": _int("DB_POOL_MAX_SIZE", default=10, minimum=1),
        "timeout": _int("DB_POOL_TIMEOUT", default=10, minimum=1),
    }
    if _options["pool"]["min_size"] > _options["pool"]["max_size"]:
        raise ImproperlyConfigured("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE.")
# The app's statements and idle transactions are cut short (0: no limit): a runaway query
# is cancelled and its request answered 503, and its connection goes back to the pool.
# Operators' commands (manage.py: seed, backup, restore, ...) are not limited. Through a
# transaction-mode PgBouncer these connection options are not passed on: set them on the
# app role there (ALTER ROLE vulhub_app SET statement_timeout = '30s').
DB_STATEMENT_TIMEOUT_MS = _int("DB_STATEMENT_TIMEOUT_MS", default=30_000)
DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = _int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=60_000)
if not os.environ.get("VULHUB_MANAGEMENT_COMMAND"):  # set by manage.py (tenants/rls.py)
    _options["options"] = " ".join(
        [
            _options.get("options", ""),
            f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}",
            f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
        ]
    ).strip()
_db["OPTIONS"] = _options
# A pool keeps its own connections: persistent connections must stay off with it.
_db["CONN_MAX_AGE"] = 0 if DB_POOL else _int("CONN_MAX_AGE", default=0)
# A persistent connection is checked before a request reuses it. A pooled one is not (that
# would cost a round trip per request): the tenant lookup, every request's first query, finds
# a connection the server dropped (a PostgreSQL restart) and takes the next one
# (tenants/middleware.py), so the request succeeds with no app restart.
_db["CONN_HEALTH_CHECKS"] = _bool("CONN_HEALTH_CHECKS", default=True)
# DATABASE_URL reaches PostgreSQL through a transaction-mode pooler (PgBouncer): a
# server-side cursor (QuerySet.iterator) cannot outlive the transaction the pooler lends.
# https://docs.djangoproject.com/en/5.2/ref/databases/#transaction-pooling-server-side-cursors
DB_TRANSACTION_POOLER = _bool("DB_TRANSACTION_POOLER", default=False)
_db["DISABLE_SERVER_SIDE_CURSORS"] = DB_TRANSACTION_POOLER
_db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="") or None}
DATABASES = {"default": _db}

# --- A streaming replica for reads (vulhub/lib/replica.py, docs/scaling.md) ----------------
# REPLICA_DATABASE_URL: the app role on a hot standby of the primary (`pg_basebackup -R`).
# The pages that only read (REPLICA_VIEWS, URL names; fnmatch patterns) are served from it
# while it is within REPLICA_MAX_LAG_SECONDS of the primary; a browser that sent anything
# else (a POST: an answer, a login, an admin save) reads from the primary for
# READ_YOUR_WRITES_SECONDS. Down or lagging: the primary serves, with no error. Operators'
# commands always work on the primary.
REPLICA_DATABASE_URL = env.str("REPLICA_DATABASE_URL", default="")
REPLICA_MAX_LAG_SECONDS = _float("REPLICA_MAX_LAG_SECONDS", default=5.0)
READ_YOUR_WRITES_SECONDS = _int("READ_YOUR_WRITES_SECONDS", default=15, minimum=1)
# How often a worker measures the replica's lag, and how long it leaves a replica that
# failed alone before trying it again.
REPLICA_CHECK_SECONDS = _float("REPLICA_CHECK_SECONDS", default=1.0)
REPLICA_RETRY_SECONDS = _float("REPLICA_RETRY_SECONDS", default=5.0)
REPLICA_VIEWS = env.list(
    "REPLICA_VIEWS",
    default=[
        "dashboard",
        "scoring:leaderboard",
        "scoring:badges",
        "scoring:submissions",
        "profile",
        "student-profile",
        "challenges:catalogue",
        "challenges:detail",
        "admin:*_changelist",
    ],
)
if REPLICA_DATABASE_URL and not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured("REPLICA_DATABASE_URL needs DATABASE_URL: a replica streams from a server of its own.")
if REPLICA_DATABASE_URL and not os.environ.get("VULHUB_MANAGEMENT_COMMAND"):
    _replica = _database_from_env("REPLICA_DATABASE_URL")
    # the replica URL's own options (sslmode, sslrootcert, ...) win over the primary's
    _replica_options = {
        **_options,
        **_replica.get("OPTIONS", {}),
        "connect_timeout": _int("REPLICA_CONNECT_TIMEOUT", default=2, minimum=1),
    }
    if DB_POOL:
        # a replica that is down must not hold a request for the pool's whole timeout
        _replica_options["pool"] = {**_options["pool"], "min_size": 0, "timeout": _replica_options["connect_timeout"]}
    _replica.update(
        {key: _db[key] for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "DISABLE_SERVER_SIDE_CURSORS")},
        OPTIONS=_replica_options,
        ENGINE=_db["ENGINE"],
        TEST={"MIRROR": "default"},
    )
    DATABASES["replica"] = _replica

# Database roles (vulhub/ops/db_roles.py, docs/configuration.md). DATABASE_URL is the app's role:
# data only (no DDL, no TRUNCATE), never superuser or BYPASSRLS, so row-level security
# holds. MIGRATIONS_DATABASE_URL is the schema's owner: `migrate`, `createcachetable`,
# `restore` and the bulk loads of `seed` run as it. BACKUP_DATABASE_URL reads everything
# for `backup`. Unset, each falls back to the one before it (one role for all: fine for
# a laptop, flagged by `check --deploy`). The embedded server makes all three itself.
_ROLE_KEYS = ("USER", "PASSWORD", "HOST", "PORT", "NAME")
_owner = (
    _database_from_env("MIGRATIONS_DATABASE_URL", "postgres")
    if (env.str("MIGRATIONS_DATABASE_URL", default="") or not env.str("DATABASE_URL", default=""))
    else _db
)
_backup = (
    _database_from_env("BACKUP_DATABASE_URL", "vulhub_backup")
    if (env.str("BACKUP_DATABASE_URL", default="") or not env.str("DATABASE_URL", default=""))
    else _owner
)
DATABASE_ROLES = {
    "app": {key: _db.get(key) for key in _ROLE_KEYS},
    "owner": {key: _owner.get(key) for key in _ROLE_KEYS},
    "backup": {key: _backup.get(key) for key in _ROLE_KEYS},
}

if os.environ.get("VULHUB_MANAGEMENT_COMMAND"):  # set by manage.py for every command but runserver
    # Operators' commands work across tenants: they connect as the owner, a role that
    # bypasses row-level security; the app role has no way to (tenants/rls.py).
    _db.update({key: _owner.get(key) for key in ("USER", "PASSWORD", "HOST", "PORT")})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------
# REDIS_URL unset: Django's database cache (its table is made by `migrate`).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "vulhub",
            "OPTIONS": {
                # Redis down or unreachable: a cache call fails within these seconds, and
                # every caller takes the error as a miss (logged) and serves the page from
                # the database. redis-py reconnects by itself when Redis is back.
                "SOCKET_CONNECT_TIMEOUT": _float("REDIS_CONNECT_TIMEOUT", default=0.5),
                "SOCKET_TIMEOUT": _float("REDIS_TIMEOUT", default=0.5),
            },
        }
    }
else:
    CACHES = {
        "default": {
            # Django's DatabaseCache, whose failures are misses like Redis's (vulhub/cache.py)
            "BACKEND": "vulhub.cache.MissingIsAMissDatabaseCache",
            "LOCATION": "cache_table",
            "KEY_PREFIX": "vulhub",
        }
    }

# Sessions live in the database. With Redis they are read through it (vulhub/sessions.py):
# a page costs a cache read, not a query, and signed-in students stay signed in while
# Redis is down or restarted. A cached copy lives at most SESSION_CACHE_SECONDS.
# Sessions are read and written through their key only (vulhub_session_*(), migration vulhub 0002).
SESSION_ENGINE = "vulhub.sessions" if REDIS_URL else "vulhub.lib.keyed_sessions"
SESSION_CACHE_SECONDS = _int("SESSION_CACHE_SECONDS", default=300)

# --- Authentication -------------------------------------------------------------
AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked (Login throttling).
    "axes.backends.AxesStandaloneBackend",
    "tenants.backends.TenantEmailBackend",
]
# https://docs.djangoproject.com/en/5.2/topics/auth/passwords/#using-argon2-with-django
# New passwords get Argon2; the others stay so existing hashes still verify (and are
# upgraded to Argon2 at the user's next login).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
SILENCED_SYSTEM_CHECKS = [
    # E-mail is unique per tenant, not globally: the backend above resolves it.
    "auth.W004",
    # The 30-character index name limit is Oracle's; the operators' plan names
    # `idx_projects_category_difficulty` (32) and PostgreSQL allows 63.
    "models.E034",
]

# --- Login throttling (django-axes) ------------------------------------------------------
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# Failed logins are counted in the database (axes' table), so throttling holds when Redis
# is down, under three limits within the cool-off (vulhub.security.login_lockout): per
# e-mail on the tenant's host *and* client network (a class behind one school NAT is not
# locked out by one student's typos, nor a student by someone elsewhere), per e-mail from
# anywhere (many networks guessing one password), and per network on any e-mail (password
# spraying). A network is the client's address, or its /64 for IPv6.
AXES_HANDLER = "vulhub.security.LoginThrottleHandler"
AXES_FAILURE_LIMIT = _int("LOGIN_FAILURE_LIMIT", default=5, minimum=1)
LOGIN_ACCOUNT_FAILURE_LIMIT = _int("LOGIN_ACCOUNT_FAILURE_LIMIT", default=20, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = _int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_int("LOGIN_COOLOFF_MINUTES", default=15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # axes' own count; the other two are the handler's
AXES_USERNAME_FORM_FIELD = "username"  # the login forms' field (and Django's failed-login signal)
AXES_USERNAME_CALLABLE = "vulhub.security.login_username"
AXES_CLIENT_IP_CALLABLE = "vulhub.security.login_address"  # BEHIND_PROXY and PROXY_COUNT below
AXES_RESET_ON_SUCCESS = True  # clears this account's count from this network only
# A refused attempt checks no password, so it counts nothing: a network locked out of an
# account does not go on to lock its owner out everywhere (LOGIN_ACCOUNT_FAILURE_LIMIT).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "vulhub.security.lockout_response"  # 429 with templates/registration/locked_out.html
AXES_HTTP_RESPONSE_CODE = 429
# Logins and failed logins are already in the audit log; axes keeps only its counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- Internationalisation -----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise, no CDN) ---------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (development, tests) WhiteNoise serves straight from the apps.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Challenge files (challenges.ChallengeFile) -----------------------------------------
# docs/configuration.md, "Challenge files". Files live in the storage "attachments": the
# local folder ATTACHMENTS_DIR, or the django-storages backend ATTACHMENT_STORAGE (e.g.
# storages.backends.s3.S3Storage) with ATTACHMENT_STORAGE_OPTIONS as a JSON object. The
# site itself serves these files, so a bad value stops it (unlike BACKUP_STORAGE_OPTIONS,
# which only the backup commands read). No base_url: files are never served by URL from
# the storage, only through the download view, which checks access first.
ATTACHMENTS_DIR = Path(env.str("ATTACHMENTS_DIR", default=str(BASE_DIR / "var" / "attachments")))
# A file over ATTACHMENT_MAX_BYTES, or a challenge whose files would total more than
# ATTACHMENTS_PER_CHALLENGE_MAX_BYTES, is a form error in the admin. The admin pages that
# upload them take request bodies up to REQUEST_BODY_MAX_SIZE plus the per-challenge limit
# (vulhub.middleware.RequestTooLargeMiddleware); every other page keeps REQUEST_BODY_MAX_SIZE.
ATTACHMENT_MAX_BYTES = _int("ATTACHMENT_MAX_BYTES", default=50 * 1024 * 1024, minimum=1)
ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = _int("ATTACHMENTS_PER_CHALLENGE_MAX_BYTES", default=200 * 1024 * 1024, minimum=1)
if ATTACHMENTS_PER_CHALLENGE_MAX_BYTES < ATTACHMENT_MAX_BYTES:
    raise ImproperlyConfigured("ATTACHMENTS_PER_CHALLENGE_MAX_BYTES must be at least ATTACHMENT_MAX_BYTES.")
ATTACHMENT_STORAGE = env.str("ATTACHMENT_STORAGE", default="").strip()


def _attachment_storage() -> dict:
    if not ATTACHMENT_STORAGE:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": ATTACHMENTS_DIR, "base_url": None},
        }
    module, _, name = ATTACHMENT_STORAGE.rpartition(".")
    try:
        found = bool(module and name) and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImproperlyConfigured(
            f"ATTACHMENT_STORAGE={ATTACHMENT_STORAGE!r} is not an installed storage class: use e.g. "
            "storages.backends.s3.S3Storage, or leave it empty for the folder ATTACHMENTS_DIR."
        )
    raw = env.str("ATTACHMENT_STORAGE_OPTIONS", default="") or "{}"
    try:
        options = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"ATTACHMENT_STORAGE_OPTIONS is not valid JSON ({error}).") from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured(
            'ATTACHMENT_STORAGE_OPTIONS must be a JSON object such as {"bucket_name": "vulhub-attachments"}.'
        )
    return {"BACKEND": ATTACHMENT_STORAGE, "OPTIONS": options}


STORAGES["attachments"] = _attachment_storage()

# --- E-mail --------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="VulHub <noreply@vulhub.localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# the SMTP server for EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = _int("EMAIL_PORT", default=25, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = _bool("EMAIL_USE_TLS", default=False)
# a slow mail server never holds a worker for long (notification e-mails are sent after commit)
EMAIL_TIMEOUT = _int("EMAIL_TIMEOUT", default=10, minimum=1)

# --- Notifications (news) ---------------------------------------------------
# the header's unread count (one query per page); off: no count and no query
NOTIFICATIONS_ENABLED = _bool("NOTIFICATIONS_ENABLED", default=True)
# after the commit, a thread of the web process sends notification e-mails; off: only
# `manage.py send_notification_emails` (cron) does (docs/notifications.md)
NOTIFICATION_EMAILS_IN_BACKGROUND = _bool("NOTIFICATION_EMAILS_IN_BACKGROUND", default=True)
# tries of one notification's e-mail before it is given up (2, 4, 8 … minutes apart)
NOTIFICATION_EMAIL_MAX_ATTEMPTS = _int("NOTIFICATION_EMAIL_MAX_ATTEMPTS", default=5, minimum=1)


def _admins() -> list[tuple[str, str]]:
    """ADMINS=ops@example.edu,Jane Doe <jane@example.edu>: who gets operator alerts."""
    admins = []
    for item in env.list("ADMINS", default=[]):
        item = item.strip()
        if not item:
            continue
        if "<" in item and item.endswith(">"):
            name, _, address = item[:-1].partition("<")
            admins.append((name.strip() or address.strip(), address.strip()))
        elif "@" in item:
            admins.append((item, item))
        else:
            raise ImproperlyConfigured(f"ADMINS: {item!r} is not an e-mail address.")
    return admins


ADMINS = _admins()

# --- Security (production) ------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/topics/security/ (`check --deploy` is clean with
# the defaults below and DEBUG off). HTTPS is assumed when DEBUG is off; SECURE_COOKIES=false
# declares a plain-http site (docker-compose's local trial, the benchmarks), and the https
# redirect and HSTS then default to off with it. Each can still be set on its own.
_https = _bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
# A refused form gets a page in the site's look that explains and offers to send an answer
# again (vulhub.errors). The token lives in its own cookie, not the session
# (CSRF_USE_SESSIONS off): a session that ended does not fail the check, so an answer sent
# then reaches the login (vulhub.middleware.KeepAnswersThroughLoginMiddleware); a login
# rotates the token, so a tab left open across one fails it and gets that page.
CSRF_FAILURE_VIEW = "vulhub.errors.csrf_failure"
CSRF_USE_SESSIONS = False
# Behind a TLS-terminating proxy: trust its X-Forwarded-Proto, and the last PROXY_COUNT
# entries of X-Forwarded-For for the client's address (vulhub.lib.client_ip). Without
# BEHIND_PROXY both headers are ignored: a TLS proxy then needs BEHIND_PROXY=true, or the
# https redirect below loops.
BEHIND_PROXY = _bool("BEHIND_PROXY", default=False)
PROXY_COUNT = _int("PROXY_COUNT", default=1, minimum=1)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", default=_https)
# Load balancers may probe over plain http (/health/ itself answers before any of this).
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# HSTS, a year by default. Tenants' sites are usually subdomains (class.example.edu), where
# includeSubDomains and preload reach only that site's own subdomains; a tenant served on
# a registrable domain whose subdomains are not all https needs both set to false.
SECURE_HSTS_SECONDS = _int("SECURE_HSTS_SECONDS", default=31_536_000 if _https else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = _bool("SECURE_HSTS_PRELOAD", default=True)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Links e-mailed to users (password reset) name the tenant's own domain with this scheme,
# never the request's Host header, which the client writes (tenants.forms.public_host).
# PUBLIC_PORT: the port the sites are served on when it is not the scheme's own (none by
# default; 8000 for `make run` or docker compose's trial, to get links that open).
PUBLIC_SCHEME = "https" if _https else "http"
PUBLIC_PORT = _int("PUBLIC_PORT", default=0)
if PUBLIC_PORT > 65535:
    raise ImproperlyConfigured(f"PUBLIC_PORT={PUBLIC_PORT} is not a port: use 1 to 65535, or leave it empty.")
# /health/detail/ (vulhub.health.HealthDetailView) answers a signed-in staff user of the
# host's tenant, or a request with `Authorization: Bearer <HEALTH_DETAIL_TOKEN>` (a
# monitor); anyone else gets a 404. Empty: no token is accepted.
HEALTH_DETAIL_TOKEN = env.str("HEALTH_DETAIL_TOKEN", default="")
if HEALTH_DETAIL_TOKEN and len(HEALTH_DETAIL_TOKEN) < 32:
    raise ImproperlyConfigured(
        "HEALTH_DETAIL_TOKEN is shorter than 32 characters. Use a long random string, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or leave it empty."
    )

# Content-Security-Policy (django-csp 4): https://django-csp.readthedocs.io/en/latest/configuration.html
# Scripts and styles come from our own static files only: no inline script, no event
# handler attribute, no style attribute. The one inline style element, the tenant's accent
# colour in base.html, carries the request's nonce. vulhub.security.TenantCSPMiddleware
# adds the origin of the tenant's logo to img-src.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "upgrade-insecure-requests": _https,
    },
}

# --- Operator tools (manage.py backup, restore, dbstats) -------------------------------
# Backups go to BACKUP_DIR, or to the storage named "backups" in STORAGES when
# BACKUP_STORAGE is set: a django-storages backend such as
# storages.backends.s3.S3Storage for an off-site copy (configured by AWS_* variables).
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(BASE_DIR / "var" / "backups")))


def _json_options(name: str, example: str = '{"bucket_name": "vulhub-backups"}') -> tuple[dict, str]:
    """Options given as a JSON object and "", or {} and what is wrong with them.

    A bad value stops only the commands that use those options (they print the problem),
    never the site.
    """
    raw = env.str(name, default="")
    if not raw:
        return {}, ""
    try:
        options = json.loads(raw)
    except ValueError as error:
        return {}, f"{name} is not valid JSON ({error})."
    if not isinstance(options, dict):
        return {}, f"{name} must be a JSON object such as {example}."
    return options, ""


BACKUP_STORAGE = env.str("BACKUP_STORAGE", default="")
_backup_options, BACKUP_STORAGE_PROBLEM = _json_options("BACKUP_STORAGE_OPTIONS")
if BACKUP_STORAGE and not BACKUP_STORAGE_PROBLEM:
    STORAGES["backups"] = {"BACKEND": BACKUP_STORAGE, "OPTIONS": _backup_options}
# Point-in-time recovery on pgBackRest (manage.py pitr; docs/operations.md). `pitr setup`
# writes PITR_CONFIG (pgBackRest's own configuration, read by the server's archive_command
# too) from the server's facts and these settings: repository 1 is the folder PITR_DIR;
# retention keeps PITR_RETENTION_FULL full backups, or with PITR_RETENTION_FULL_DAYS those
# of that many days (pgBackRest's time retention), and the WAL they need.
# PITR_PGBACKREST_OPTIONS adds pgBackRest options as JSON, e.g. a second repository in an
# S3 bucket: {"repo2-type": "s3", "repo2-s3-bucket": "vulhub-pitr", ...}.
PITR_DIR = Path(env.str("PITR_DIR", default=str(BASE_DIR / "var" / "pitr")))
PITR_CONFIG = Path(env.str("PITR_CONFIG", default=str(BASE_DIR / "var" / "pgbackrest" / "pgbackrest.conf")))
PITR_STANZA = env.str("PITR_STANZA", default="vulhub")
PITR_RETENTION_FULL = _int("PITR_RETENTION_FULL", default=2, minimum=1)
PITR_RETENTION_FULL_DAYS = _int("PITR_RETENTION_FULL_DAYS", default=0)
PITR_RETENTION_DIFF = _int("PITR_RETENTION_DIFF", default=6, minimum=1)
PITR_PGBACKREST_OPTIONS, PITR_PGBACKREST_OPTIONS_PROBLEM = _json_options(
    "PITR_PGBACKREST_OPTIONS", '{"repo2-path": "/mnt/offsite/pitr"}'
)
# Queries slower than this (milliseconds) are logged with request id and tenant; 0: off.
SLOW_QUERY_MS = _int("SLOW_QUERY_MS", default=200)
# `dbstats --check` (a monitoring check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; docs/operations.md,
# Database health) mails ADMINS when one of these is crossed. A key left out takes its default in
# vulhub/ops/dbstats.py (DEFAULT_THRESHOLDS); a critical level milder than its warning level is UNKNOWN.
DBSTATS_THRESHOLDS = {
    "connections_used_pct": _int("DBSTATS_MAX_CONNECTIONS_PCT", default=80, minimum=1),
    "connections_critical_pct": _int("DBSTATS_CRIT_CONNECTIONS_PCT", default=95, minimum=1),
    "cache_hit_ratio_min_pct": _int("DBSTATS_MIN_CACHE_HIT_PCT", default=95),
    "long_running_seconds": _int("DBSTATS_MAX_QUERY_SECONDS", default=300, minimum=1),
    "idle_in_transaction_seconds": _int("DBSTATS_MAX_IDLE_IN_TRANSACTION_SECONDS", default=60, minimum=1),
    "dead_tuple_pct": _int("DBSTATS_MAX_DEAD_TUPLE_PCT", default=20, minimum=1),
    "slow_query_mean_ms": _int("DBSTATS_MAX_MEAN_QUERY_MS", default=500, minimum=1),
    # the newest backup (manage.py backup; pgBackRest's in each repository) may be this old, a warning
    # beyond, critical beyond twice it; 0: not checked (set it where backups are scheduled)
    "backup_age_hours": _int("DBSTATS_MAX_BACKUP_AGE_HOURS", default=0),
    # age(datfrozenxid) / mxid_age(datminmxid) of any database; wraparound at 2^31
    "xid_age_warning": _int("DBSTATS_WARN_XID_AGE", default=500_000_000, minimum=1),
    "xid_age_critical": _int("DBSTATS_CRIT_XID_AGE", default=1_000_000_000, minimum=1),
    "lock_wait_seconds": _int("DBSTATS_MAX_LOCK_WAIT_SECONDS", default=30, minimum=1),
    "lock_wait_critical_seconds": _int("DBSTATS_CRIT_LOCK_WAIT_SECONDS", default=300, minimum=1),
    "replication_lag_seconds": _int("DBSTATS_MAX_REPLICATION_LAG_SECONDS", default=60, minimum=1),
    "replication_lag_critical_seconds": _int("DBSTATS_CRIT_REPLICATION_LAG_SECONDS", default=600, minimum=1),
    "replication_lag_mb": _int("DBSTATS_MAX_REPLICATION_LAG_MB", default=256, minimum=1),
    "replication_lag_critical_mb": _int("DBSTATS_CRIT_REPLICATION_LAG_MB", default=1024, minimum=1),
    # free space (% as df counts it) under the data directory, BACKUP_DIR and PITR_DIR
    "disk_free_min_pct": _int("DBSTATS_MIN_DISK_FREE_PCT", default=15),
    "disk_free_critical_pct": _int("DBSTATS_CRIT_DISK_FREE_PCT", default=5),
}

# --- Metrics (Prometheus; docs/monitoring.md) -----------------------------------------
# django-prometheus counts requests, database and cache calls; vulhub.lib.metrics what
# classes do. GET /metrics answers `Authorization: Bearer <METRICS_TOKEN>` or a client in
# METRICS_ALLOWED_NETWORKS (comma-separated, e.g. 10.0.0.0/8), and is a 404 for anyone
# else. Off (METRICS_ENABLED=false): nothing is counted and /metrics is a 404.
METRICS_ENABLED = _bool("METRICS_ENABLED", default=True)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "METRICS_TOKEN is shorter than 32 characters. Use a long random string, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or leave it empty."
    )


def _networks(name: str) -> list:
    networks = []
    for entry in env.list(name, default=[]):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not an address or a network such as 10.0.0.0/8 (comma-separated)."
            ) from None
    return networks


METRICS_ALLOWED_NETWORKS = _networks("METRICS_ALLOWED_NETWORKS")
# Classes named in the per-class gauges (the busiest first); the rest are summed as "(other classes)".
METRICS_TENANT_LABEL_LIMIT = _int("METRICS_TENANT_LABEL_LIMIT", default=50, minimum=1)
# The gauges read at scrape time (waiting write-ups, newest backups) are kept this long.
METRICS_SCRAPE_CACHE_SECONDS = _int("METRICS_SCRAPE_CACHE_SECONDS", default=30, minimum=1)
# Under gunicorn each worker writes its counts here (gunicorn.conf.py makes a folder per
# gunicorn): named by hand, it must be a folder this process may write. prometheus_client
# reads the environment itself, so `.env` cannot set it.
_multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _multiproc is not None and not (_multiproc and os.path.isdir(_multiproc) and os.access(_multiproc, os.W_OK)):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={_multiproc!r} is not a folder this process may write: "
        "create it, or unset it (gunicorn.conf.py makes one per gunicorn)."
    )
PROMETHEUS_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))
if METRICS_ENABLED:
    # every request counted and timed, from first in to last out (vulhub.monitoring)
    MIDDLEWARE.insert(0, "vulhub.monitoring.RequestMetricsMiddleware")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("vulhub.middleware.HealthCheckMiddleware") + 1, "vulhub.monitoring.MetricsMiddleware"
    )
    # the database's statements and the cache's reads, counted (vulhub/ops/postgresql, vulhub/cache.py)
    for _database in DATABASES.values():
        if _database["ENGINE"] == "django.db.backends.postgresql":
            _database["ENGINE"] = "vulhub.ops.postgresql"
    if CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
        CACHES["default"]["BACKEND"] = "vulhub.cache.CountedRedisCache"

# A web worker (vulhub/wsgi.py) refuses to start while the database lacks migrations of
# its code (vulhub/ops/schema.py): `manage.py migrate` is a job run once before the deploy.
SCHEMA_CHECK_AT_START = _bool("SCHEMA_CHECK_AT_START", default=True)

# --- Logging --------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "health_check": {"level": "ERROR"},
        "pgserver": {"level": "WARNING"},
        # slow queries are warnings operators want even when LOG_LEVEL is ERROR
        "vulhub.slow_queries": {"level": "WARNING"},
    },
}

# --- Roster import/export (django-import-export) ----------------------------------
# Importing needs the "add" permission of the model (tenant admins for users).
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_USE_TRANSACTIONS = True
# A roster file is refused whole above these (tenants.resources): the preview and the import of
# a file at the caps each finish in a few seconds, far within the worker's 30 s timeout
# (measured in docs/security.md, "Bounded input").
ROSTER_IMPORT_MAX_ROWS = _int("ROSTER_IMPORT_MAX_ROWS", default=2000, minimum=1)
ROSTER_IMPORT_MAX_BYTES = _int("ROSTER_IMPORT_MAX_BYTES", default=1024 * 1024, minimum=1024)

# --- Scoring ------------------------------------------------------------------------
# Wrong flags a student may try per challenge within the window; a tenant can set its
# own in its settings: {"flag_attempts": {"limit": 5, "window_minutes": 30}}.
FLAG_ATTEMPT_LIMIT = _int("FLAG_ATTEMPT_LIMIT", default=10, minimum=1)
FLAG_ATTEMPT_WINDOW_MINUTES = _int("FLAG_ATTEMPT_WINDOW_MINUTES", default=10, minimum=1)

# --- Abuse limits -----------------------------------------------------------------------
# Registration and password reset, per client address (vulhub.lib.client_ip) and, for reset,
# per e-mail address too; counted in the database (tenants.rate_limits), so they hold when
# Redis is down. A refused attempt is a 429 and writes nothing. A whole class registering
# at once from behind one school NAT counts as one address: raise the limit for that.
REGISTRATION_LIMIT_PER_IP = _int("REGISTRATION_LIMIT_PER_IP", default=30, minimum=1)
REGISTRATION_WINDOW_MINUTES = _int("REGISTRATION_WINDOW_MINUTES", default=10, minimum=1)
PASSWORD_RESET_LIMIT_PER_IP = _int("PASSWORD_RESET_LIMIT_PER_IP", default=20, minimum=1)
PASSWORD_RESET_LIMIT_PER_EMAIL = _int("PASSWORD_RESET_LIMIT_PER_EMAIL", default=5, minimum=1)
PASSWORD_RESET_WINDOW_MINUTES = _int("PASSWORD_RESET_WINDOW_MINUTES", default=60, minimum=1)
# Request bodies: https://docs.djangoproject.com/en/5.2/ref/settings/#data-upload-max-memory-size
# Form text (files excluded) up to 1 MiB: the longest write-up is 20,000 characters. Files
# beyond FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file. REQUEST_BODY_MAX_SIZE caps a
# whole body, files included (a roster CSV). Over any of these: a 413 page
# (vulhub.middleware.RequestTooLargeMiddleware), not Django's 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = _int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = _int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = _int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000, minimum=10)
DATA_UPLOAD_MAX_NUMBER_FILES = _int("DATA_UPLOAD_MAX_NUMBER_FILES", default=10, minimum=1)
REQUEST_BODY_MAX_SIZE = _int("REQUEST_BODY_MAX_SIZE", default=10 * 1024 * 1024, minimum=1024)
if REQUEST_BODY_MAX_SIZE < DATA_UPLOAD_MAX_MEMORY_SIZE:
    raise ImproperlyConfigured("REQUEST_BODY_MAX_SIZE must be at least DATA_UPLOAD_MAX_MEMORY_SIZE.")
# Just before the tenant middleware: bodies are read before the request's transaction
# opens, so a slow upload holds no database connection.
MIDDLEWARE.insert(
    MIDDLEWARE.index("tenants.middleware.TenantMiddleware"), "vulhub.middleware.RequestTooLargeMiddleware"
)
