"""Settings for courseprogress, read from the environment.

With nothing set the app runs on a SQLite file and Django's local-memory cache, so a newcomer
needs only Python. Production and CI set DATABASE_URL (PostgreSQL) and REDIS_URL (Redis).
"""

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off: export SECRET_KEY=..., or run `make run` "
            "once (it keeps a key in .secret_key, which manage.py reads)."
        )
    SECRET_KEY = "insecure-development-only-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "courseprogress",
    "progress",
]

MIDDLEWARE = [
    # First: /healthz answers whatever the Host header and scheme (see the class).
    "courseprogress.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "courseprogress.middleware.ApiMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's, with the storage built only when a message is used (never by the API).
    "courseprogress.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The benchmark serves its bare comparison view from bench.urls, under the same settings.
ROOT_URLCONF = os.environ.get("ROOT_URLCONF", "config.urls")
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Persistent connections with health checks, so a PostgreSQL restart costs no failed request.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60)
# Below gunicorn's worker timeout, so a stuck query ends as a JSON error, not a killed worker.
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 20_000)
# PostgreSQL's JIT compiles any statement its planner costs above jit_above_cost; the course
# page's statement (cost ~260,000 for 20 learners of 500) spent 25 of its 45 ms compiling, to
# run short loops once. Off for this app's sessions unless DB_JIT=on (bench/RESULTS.md).
DB_JIT = env_bool("DB_JIT", False)
PG_ENGINE = "courseprogress.db"
PG_SESSION_OPTIONS = f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}" + (
    "" if DB_JIT else " -c jit=off"
)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a health check that asks the socket, not the server
        # (courseprogress/db/base.py): one round trip fewer per request.
        DATABASES["default"]["ENGINE"] = PG_ENGINE
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = PG_SESSION_OPTIONS
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"timeout": 20},
        }
    }

# Read replicas (docs/scaling.md): PostgreSQL streaming replicas that compute cache misses once
# they have replayed the primary's WAL up to where the request read its stamp
# (courseprogress/replicas.py). Unset: every query goes to the primary, as without replicas.
# Writes, the admin, commands and the stamp reads always use the primary ("default").
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
# How long a cache miss waits for a replica to catch up before the primary computes it.
REPLICA_MAX_WAIT_MS = env_int("REPLICA_MAX_WAIT_MS", 50)
# A replica that failed (down, or did not catch up in time) is skipped, or not waited for, for
# this long; the next miss after that tries it again.
REPLICA_RETRY_SECONDS = env_float("REPLICA_RETRY_SECONDS", 5.0)
# libpq's connect_timeout for replicas (seconds, at least 2): an unreachable host costs no more.
REPLICA_CONNECT_TIMEOUT = env_int("REPLICA_CONNECT_TIMEOUT", 2)
REPLICA_DATABASES = []
for number, url in enumerate(DATABASE_REPLICA_URLS, start=1):
    if DATABASES["default"]["ENGINE"] != PG_ENGINE:
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs DATABASE_URL on PostgreSQL")
    replica = dj_database_url.parse(url, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
    if replica["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: not a PostgreSQL URL: {url!r}")
    replica["ENGINE"] = PG_ENGINE
    replica.setdefault("OPTIONS", {}).update(
        options=PG_SESSION_OPTIONS,
        connect_timeout=REPLICA_CONNECT_TIMEOUT,
    )
    # The test suite has no replica: there, each alias is the test database itself.
    replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{number}"] = replica
    REPLICA_DATABASES.append(f"replica_{number}")
DATABASE_ROUTERS = ["courseprogress.replicas.ReplicaRouter"] if REPLICA_DATABASES else []

# Ids are the guide's SERIAL / INTEGER columns.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Redis down or hung must never make a request fail or hang: short timeouts, errors ignored
# (and logged), requests answered from the database.
CACHE_SOCKET_TIMEOUT = env_float("CACHE_SOCKET_TIMEOUT", 0.25)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "cp"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": CACHE_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": CACHE_SOCKET_TIMEOUT,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "courseprogress.cache"
    THROTTLE_CACHE = "default"
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "courseprogress",
        },
        # Local memory is per process: every gunicorn worker would count its own throttles
        # (2 workers let ~2x the rate through). Without Redis the counts live in a table of
        # the database every worker shares; `migrate` creates it (courseprogress/apps.py).
        "throttle": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "courseprogress_throttle_cache",
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "cp"),
        },
    }
    THROTTLE_CACHE = "throttle"

# Time to live of cached reads, in seconds.
CACHE_TTL_LEARNER_PROGRESS = env_int("CACHE_TTL_LEARNER_PROGRESS", 300)
CACHE_TTL_COURSE_ANALYTICS = env_int("CACHE_TTL_COURSE_ANALYTICS", 900)
CACHE_TTL_COURSE_PAGE = env_int("CACHE_TTL_COURSE_PAGE", 60)

# --- Auth -----------------------------------------------------------------------------------
# Seconds a token -> user lookup stays cached (0: off). Revoking a token or saving the user
# drops it at once; changes that send no signal (QuerySet.update, raw SQL) take this long.
AUTH_TOKEN_CACHE_TTL = env_int("AUTH_TOKEN_CACHE_TTL", 30)
# Seconds a user's permission set stays cached (0: off); permission and group changes made
# through the ORM drop it at once (courseprogress/auth_backends.py).
AUTH_PERMISSION_CACHE_TTL = env_int("AUTH_PERMISSION_CACHE_TTL", 30)
AUTHENTICATION_BACKENDS = ["courseprogress.auth_backends.CachedPermissionsBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18n / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Requests -------------------------------------------------------------------------------
# Request bodies over 1 MiB are a JSON 413 under the API paths.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
API_PATH_PREFIXES = ("/user-progress/", "/auth/")


# --- Proxies ---------------------------------------------------------------------------------
def env_networks(name: str) -> tuple:
    """Comma-separated IP addresses or CIDR networks (192.0.2.1, 10.0.0.0/8, ::1)."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks, not {item!r}"
            ) from None
    return tuple(networks)


# The reverse proxies in front of gunicorn. X-Forwarded-For is believed only from them (the
# throttles' client address, courseprogress/throttling.py); with none (the default) a client is
# its socket's address and the header is ignored. config/gunicorn.conf.py gives gunicorn's
# forwarded_allow_ips the same list.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")

# --- Security (production values come from the environment) ---------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Django REST framework ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes failures a 401, not a 403. The
        # token -> user lookup is cached briefly (courseprogress/authentication.py).
        "courseprogress.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "courseprogress.renderers.EnvelopeJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["courseprogress.parsers.JSONParser"],
    # Negotiation errors wait until the caller is authorised (courseprogress/negotiation.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "courseprogress.negotiation.DeferredContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "courseprogress.pagination.PageLimitPagination",
    "EXCEPTION_HANDLER": "courseprogress.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # DRF's own get_ident() believes any X-Forwarded-For when this is unset; 0: never. The
    # throttles here use TRUSTED_PROXIES instead (courseprogress/throttling.py).
    "NUM_PROXIES": 0,
}


def env_rate(name: str, default: str) -> str | None:
    """A DRF rate such as "600/min"; "off" (or "none", "0") switches the limit off."""
    value = os.environ.get(name, default).strip()
    return None if value.lower() in {"off", "none", "0", ""} else value


# Read on every request by courseprogress.throttling, so tests and operators can change them.
THROTTLE_RATES = {
    "auth_token": env_rate("THROTTLE_RATE_AUTH_TOKEN", "30/min"),
    "progress_update": env_rate("THROTTLE_RATE_PROGRESS_UPDATE", "600/min"),
}

# --- Change feed and webhooks (contract section 6) -----------------------------------------
# Days an event is kept; prune_events deletes older ones, and a feed cursor older than that
# is answered with 410.
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 30)
# Seconds a webhook receiver has to answer (connect, and then each read).
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 10.0)
# Seconds a worker leases a delivery it attempts: a worker killed mid-attempt leaves it to be
# attempted again after that. Must outlast an attempt (two timeouts: connect, then read).
WEBHOOK_LEASE_SECONDS = env_float("WEBHOOK_LEASE_SECONDS", 2 * WEBHOOK_TIMEOUT + 30)
# Loopback, private and link-local receivers are refused unless this is on (development, tests).
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
if EVENT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("EVENT_RETENTION_DAYS must be at least 1")
if WEBHOOK_TIMEOUT <= 0:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT must be a positive number of seconds")
if WEBHOOK_LEASE_SECONDS <= 2 * WEBHOOK_TIMEOUT:
    raise ImproperlyConfigured("WEBHOOK_LEASE_SECONDS must be more than twice WEBHOOK_TIMEOUT")

SPECTACULAR_SETTINGS = {
    "TITLE": "courseprogress API",
    "DESCRIPTION": (
        "Where every learner stands in every course. Get a token with POST /auth/token, then "
        "press Authorize and paste `Token <token>` into apiToken. Every answer is the envelope "
        '`{"success", "message", "results"}`; failures say `"success": false`, a `message` '
        "and, for 400s, `errors` by field. `activityDuration` is minutes, percentages are "
        "0-100, `averageCompletionTime` is days."
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Path ids are digits only (courseprogress.converters.IdConverter).
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}
    },
    "ENUM_NAME_OVERRIDES": {
        "EnrollmentStatusEnum": "progress.models.EnrollmentStatus",
        "ProgressStatusEnum": "progress.models.ProgressStatus",
    },
}

# --- Logging: everything to stdout ----------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "quiet_cache_errors": {"()": "courseprogress.log.QuietCacheErrors"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "courseprogress.cache": {"filters": ["quiet_cache_errors"]},
    },
}
