"""Django settings, all read from the environment (see README and ARCHITECTURE.md section 3)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from studio.env import (
    env_bool,
    env_list,
    env_str,
    generate_django_secret,
    generate_fernet_key,
    persistent_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("STUDIO_DEBUG", False)
SECRET_KEY = persistent_secret("STUDIO_SECRET_KEY", VAR_DIR / "secret_key", generate_django_secret)
FERNET_KEYS = [
    key.strip()
    for key in persistent_secret("STUDIO_FERNET_KEYS", VAR_DIR / "fernet_keys", generate_fernet_key).split(
        ","
    )
    if key.strip()
]

PUBLIC_URL = env_str("STUDIO_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(PUBLIC_URL)
ALLOWED_HOSTS = env_list("STUDIO_ALLOWED_HOSTS") or sorted(
    {_public.hostname or "127.0.0.1", "127.0.0.1", "localhost"}
)
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"]
ALLOW_PRIVATE_PROVIDER_URLS = env_bool("STUDIO_ALLOW_PRIVATE_PROVIDER_URLS", False)
METRICS_TOKEN = env_str("STUDIO_METRICS_TOKEN")
# How often every server process fails runs whose process died (0: only `manage.py reap_runs`).
REAP_EVERY_S = float(env_str("STUDIO_REAP_EVERY_S", "10"))
ROLLUP_EVERY_S = float(env_str("STUDIO_ROLLUP_EVERY_S", "3600"))  # usage rollups of closed days; 0: off
# Concurrent ledger writes share transactions (observability/writer.py); 0: one transaction a write.
LEDGER_GROUP_COMMIT = env_bool("STUDIO_LEDGER_GROUP_COMMIT", True)
REDIS_URL = env_str("REDIS_URL")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served by the app (pinned, works offline)
    "channels",
    "studio",
    "accounts",
    "observability",
    "providers",
    "agents",
    "orchestrations",
    "deployments",
    "templates",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "studio.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Routes authenticated by bearer token (the API) or key (the deployment channels) keep no session:
# their requests skip the middleware that only sessions need (studio/handler.py), which the admin
# and /metrics still run.
STATELESS_PATH_PREFIXES = ["/api/", "/workflows/"]
SESSION_MIDDLEWARE = {
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
}

ROOT_URLCONF = "studio.urls"
ASGI_APPLICATION = "studio.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],  # never BASE_DIR / "templates": that is our app label
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


def _database() -> dict:
    url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'studio.sqlite3'}")
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Many concurrent writers (runs, spans, events): WAL, a busy timeout, and write
        # transactions that take the lock up front instead of failing on upgrade.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file (not memory) so that a live server process in the tests shares the test database.
        config["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # Every request and WebSocket frame borrows a pooled connection instead of opening one, and
        # the pool bounds how many the server process holds however many requests are in flight.
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": int(env_str("STUDIO_DB_POOL_SIZE", "20")),
            "timeout": 30,
        }
    return config


DATABASES = {"default": _database()}

# Where runs execute (README, "Execution"; docs/architecture.md, "Execution topology"): `inline`
# on the event loop of the process that accepted them; `queue` as Procrastinate jobs on
# PostgreSQL, executed by `manage.py worker` processes.
EXECUTION = env_str("STUDIO_EXECUTION", "inline").lower()
if EXECUTION not in ("inline", "queue"):
    raise ImproperlyConfigured(f"STUDIO_EXECUTION must be inline or queue (got {EXECUTION!r}).")
_ON_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if EXECUTION == "queue" and not _ON_POSTGRESQL:
    raise ImproperlyConfigured(
        "STUDIO_EXECUTION=queue needs PostgreSQL: set DATABASE_URL=postgres://... "
        "(the embedded SQLite database executes runs in-process, STUDIO_EXECUTION=inline)."
    )
# Procrastinate's schema is PostgreSQL SQL: its app (migrations, admin, the job queue) is there only.
if _ON_POSTGRESQL:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("studio"), "procrastinate.contrib.django")
# A worker stopped with SIGTERM finishes its runs for this long, then hands the rest back to the
# queue (another worker resumes them); a pod's termination grace period must be longer.
WORKER_DRAIN_S = float(env_str("STUDIO_WORKER_DRAIN_S", "25"))
WORKER_CONCURRENCY = int(env_str("STUDIO_WORKER_CONCURRENCY", "50"))  # runs at once per worker
# Workers beat every WORKER_HEARTBEAT_S; the jobs of one silent for WORKER_STALLED_S are retried.
WORKER_HEARTBEAT_S = float(env_str("STUDIO_WORKER_HEARTBEAT_S", "10"))
WORKER_STALLED_S = float(env_str("STUDIO_WORKER_STALLED_S", "30"))
WORKER_METRICS_PORT = int(env_str("STUDIO_WORKER_METRICS_PORT", "0"))  # 0: no /metrics on workers
WORKER_METRICS_HOST = env_str("STUDIO_WORKER_METRICS_HOST", "127.0.0.1")
RUN_MAX_ATTEMPTS = int(env_str("STUDIO_RUN_MAX_ATTEMPTS", "3"))  # jobs of one run, resumes included
# How long an approval waits when its tool or step sets no timeout (0: until someone decides), and
# how often a server process (inline) looks for overdue ones.
APPROVAL_TIMEOUT_S = float(env_str("STUDIO_APPROVAL_TIMEOUT_S", "0"))
APPROVAL_SWEEP_EVERY_S = float(env_str("STUDIO_APPROVAL_SWEEP_EVERY_S", "15"))
# Finished runs older than this many days are pruned daily by the worker pool (0: never).
RUN_RETENTION_DAYS = int(env_str("STUDIO_RUN_RETENTION_DAYS", "90"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # The socket timeout must outlast the layer's 5 s blocking pop, or quiet streams die.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 2}]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Seconds the user and organization behind an access token are cached (accounts/auth_cache.py;
# every change invalidates them). Off without a cache shared by the server processes.
AUTH_CACHE_SECONDS = int(env_str("STUDIO_AUTH_CACHE_SECONDS", "5" if REDIS_URL else "0"))

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.StudioJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["studio.api.permissions.IsOrganizationMember"],
    "DEFAULT_PAGINATION_CLASS": "studio.api.pagination.StudioPagination",
    "DEFAULT_FILTER_BACKENDS": ["studio.api.filtering.StudioFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["studio.api.renderers.StudioJSONRenderer"],  # DRF's bytes, by orjson
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "studio.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
    # Views that name a `throttle_scope` are limited per organization (per client address before
    # login), counted in the shared cache; rates are DRF's "N/min" or "N/hour" (README).
    "DEFAULT_THROTTLE_CLASSES": ["studio.api.throttles.ScopedWindowThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "register": env_str("STUDIO_THROTTLE_REGISTER", "20/hour"),
        "login": env_str("STUDIO_THROTTLE_LOGIN", "60/min"),
        "agent_test": env_str("STUDIO_THROTTLE_AGENT_TEST", "120/min"),
        "orchestration_execute": env_str("STUDIO_THROTTLE_ORCHESTRATION_EXECUTE", "60/min"),
        "provider_validate": env_str("STUDIO_THROTTLE_PROVIDER_VALIDATE", "30/min"),
    },
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kaizen Studio API",
    "DESCRIPTION": "Configure LLM providers, design agents, orchestrate them, deploy and observe.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENUM_NAME_OVERRIDES": {
        "UserStatusEnum": "accounts.models.User.Status",
        "OrganizationStatusEnum": "accounts.models.Organization.Status",
        "LifecycleStatusEnum": "agents.models.Agent.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # The deployment channels are plain Django / ASGI views drf-spectacular cannot see.
        "deployments.api.openapi.serving_paths_hook",
        "studio.api.openapi.error_envelope_hook",
    ],
}

# Login brute-force protection: attempts per (email, client address) within the window.
LOGIN_FAILURE_LIMIT = 10
LOGIN_FAILURE_WINDOW_S = 15 * 60
# Proxies whose X-Forwarded-For names the client (addresses or networks), see studio.audit.client_address.
TRUSTED_PROXIES = env_list("STUDIO_TRUSTED_PROXIES")

# Bounds on what one request, user or organization can make a server do (README, configuration).
MAX_REQUEST_BODY_BYTES = int(env_str("STUDIO_MAX_BODY_BYTES", str(1024 * 1024)))  # and WebSocket frames
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
MAX_WEBSOCKETS_PER_USER = int(env_str("STUDIO_MAX_WEBSOCKETS_PER_USER", "20"))  # per server process
MAX_ACTIVE_RUNS_PER_ORG = int(env_str("STUDIO_MAX_ACTIVE_RUNS_PER_ORG", "100"))  # queued or running
REACT_MAX_TOOL_CALLS_PER_TURN = int(env_str("STUDIO_REACT_MAX_TOOL_CALLS_PER_TURN", "8"))
REACT_MAX_TOOL_CALLS_PER_RUN = int(env_str("STUDIO_REACT_MAX_TOOL_CALLS_PER_RUN", "32"))
# MCP tool calls of agents (agents.mcp_tools): connect timeout, total deadline of one call or
# listing, and the most result text one call hands the model.
MCP_CONNECT_TIMEOUT_S = float(env_str("STUDIO_MCP_CONNECT_TIMEOUT_S", "5"))
MCP_CALL_TIMEOUT_S = float(env_str("STUDIO_MCP_CALL_TIMEOUT_S", "30"))
MCP_MAX_RESULT_BYTES = int(env_str("STUDIO_MCP_MAX_RESULT_BYTES", "65536"))

# Outbound webhooks (deployments/webhooks.py): the waits after each failed attempt of a delivery
# (so 1 + their number attempts, ~66 min in all by default), how many deliveries in a row may fail
# for good before the webhook is disabled, one attempt's deadline, and how often every server
# process looks for due deliveries (0: never; new ones are sent at once all the same).
WEBHOOK_RETRY_DELAYS_S = [float(s) for s in env_list("STUDIO_WEBHOOK_RETRY_DELAYS_S", "10,60,300,900,2700")]
WEBHOOK_DISABLE_AFTER_FAILURES = int(env_str("STUDIO_WEBHOOK_DISABLE_AFTER_FAILURES", "5"))
WEBHOOK_TIMEOUT_S = float(env_str("STUDIO_WEBHOOK_TIMEOUT_S", "10"))
WEBHOOK_SWEEP_EVERY_S = float(env_str("STUDIO_WEBHOOK_SWEEP_EVERY_S", "30"))
# Days a settled delivery (delivered or failed) is kept before the pruning deletes it (0: kept
# for ever): hourly in each server process inline, daily on the worker pool when queued.
WEBHOOK_DELIVERY_RETENTION_DAYS = int(env_str("STUDIO_WEBHOOK_DELIVERY_RETENTION_DAYS", "30"))

# Server-sent event streams of deployment runs one key may hold open at once.
MAX_EVENT_STREAMS_PER_KEY = int(env_str("STUDIO_MAX_EVENT_STREAMS_PER_KEY", "10"))  # per server process

# Production hardening applies whenever the public URL is https (behind a TLS-terminating proxy
# that sets X-Forwarded-Proto).
if _public.scheme == "https":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes and the metrics scrape reach pods directly, over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^api/health$", r"^api/health/live$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("STUDIO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Procrastinate logs every job and every task registration at INFO.
        "procrastinate": {"level": env_str("STUDIO_QUEUE_LOG_LEVEL", "WARNING")},
    },
}
