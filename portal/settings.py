"""Settings for the vendor portal, read from the environment.

Every setting has a default that works on a developer machine; a bad value fails loudly at
start-up with the name of the variable. Secrets that development needs (SECRET_KEY, the
license signing key, the encryption keys) are generated once into ``var/`` (ignored by git),
unless ``PORTAL_ENV=production``, where every secret must be given. DEBUG is separate and off
unless ``DEBUG=true``: it only shows tracebacks, it does not decide where secrets come from.
"""

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))

TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off", ""}


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: str, minimum: int = 0) -> int:
    value = os.environ.get(name, default).strip()
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def envsecret(name: str, generate=None, *, filename: str | None = None) -> str:
    """Read NAME, or the file named by NAME_FILE; else generate once into var/<filename>.

    Generation is for development only: with PORTAL_ENV=production a missing secret is an error.
    """
    if os.environ.get(name):
        return os.environ[name].strip()
    path_name = os.environ.get(f"{name}_FILE")
    if path_name:
        try:
            return Path(path_name).read_text().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path_name}: {e.strerror}") from None
    if generate is None:
        return ""
    path = VAR_DIR / (filename or name.lower())
    if path.exists():
        return path.read_text().strip()
    if PORTAL_ENV == "production":
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when PORTAL_ENV is production")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    value = generate()
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def envaddresses(name: str) -> list[str]:
    """Comma-separated IP addresses or networks (CIDR), normalised; empty by default."""
    values = [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP address or network (CIDR)") from None
    return values


DEBUG = envbool("DEBUG", "false")
PORTAL_ENV = os.environ.get("PORTAL_ENV", "development").strip().lower()
if PORTAL_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"PORTAL_ENV must be development or production, not {PORTAL_ENV!r}")
SECRET_KEY = envsecret("SECRET_KEY", lambda: secrets.token_urlsafe(50))

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = envint("PORT", "8000", minimum=1)
if not os.environ.get("PORTAL_URL", "").strip() and not is_loopback(HOST):
    # The URL goes into licenses, pull secrets and image names: it must be one customers can
    # reach, which a bind address such as 0.0.0.0 is not.
    raise ImproperlyConfigured(
        f"PORTAL_URL must be set when HOST ({HOST}) is not a loopback address: the address "
        "people and clusters use, e.g. PORTAL_URL=http://portal.example.com:8000")
PORTAL_URL = (os.environ.get("PORTAL_URL", "").strip() or f"http://{HOST}:{PORT}").rstrip("/")
_portal_url = urlsplit(PORTAL_URL)
if _portal_url.scheme not in ("http", "https") or not _portal_url.hostname:
    raise ImproperlyConfigured(f"PORTAL_URL must be an http(s) URL, not {PORTAL_URL!r}")
if _portal_url.hostname in ("0.0.0.0", "::"):
    raise ImproperlyConfigured(f"PORTAL_URL must name a host people can reach, not {_portal_url.hostname}")
PORTAL_HTTPS = _portal_url.scheme == "https"

# --- TLS served by the web processes themselves ---------------------------------------------
# The Procfile's web line hands these two files to uvicorn (and refuses to start when it cannot
# read them); with a reverse proxy terminating TLS in front (deploy/Caddyfile) neither is set.
PORTAL_TLS_CERT_FILE = os.environ.get("PORTAL_TLS_CERT_FILE", "").strip()
PORTAL_TLS_KEY_FILE = os.environ.get("PORTAL_TLS_KEY_FILE", "").strip()
if bool(PORTAL_TLS_CERT_FILE) != bool(PORTAL_TLS_KEY_FILE):
    raise ImproperlyConfigured(
        "PORTAL_TLS_CERT_FILE and PORTAL_TLS_KEY_FILE go together: set both (the certificate "
        "chain and its private key, PEM files) or neither")
if PORTAL_TLS_CERT_FILE and not PORTAL_HTTPS:
    # Licenses, pull secrets and image names carry PORTAL_URL: an http:// one would send
    # customers to a port that only speaks TLS.
    raise ImproperlyConfigured(
        f"PORTAL_URL must start with https:// when the portal serves TLS itself "
        f"(PORTAL_TLS_CERT_FILE is set), not {PORTAL_URL!r}")
# --- end of TLS --------------------------------------------------------------------------------

# host[:port] customers pull proxied images from; defaults to PORTAL_URL's host[:port].
PORTAL_PROXY_HOST = os.environ.get("PORTAL_PROXY_HOST", "").strip() or _portal_url.netloc

# The host names of PORTAL_URL and the proxy host; a loopback portal also answers to every
# loopback name, so http://localhost:8000/ works as well as http://127.0.0.1:8000/.
_default_hosts = [_portal_url.hostname, urlsplit(f"//{PORTAL_PROXY_HOST}").hostname or ""]
if is_loopback(_portal_url.hostname):
    _default_hosts += ["localhost", "127.0.0.1", "[::1]"]
_default_hosts = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in dict.fromkeys(h for h in _default_hosts if h)]
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", ",".join(_default_hosts)).split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [f"{_portal_url.scheme}://{_portal_url.netloc}"]

# --- Deployment: host changes (portal/hosts.py) ------------------------------------------------
# Host names (host[:port]) the portal was reached at before PORTAL_URL or PORTAL_PROXY_HOST
# changed: still accepted, for the proxy registry, the update check and license sync only,
# until removed from here (installed clusters keep pulling from the name they were given).
PORTAL_PREVIOUS_HOSTS = [h.strip().lower() for h in os.environ.get("PORTAL_PREVIOUS_HOSTS", "").split(",") if h.strip()]
ALLOWED_HOSTS += [h for h in dict.fromkeys(urlsplit(f"//{h}").hostname or h for h in PORTAL_PREVIOUS_HOSTS)
                  if h not in ALLOWED_HOSTS]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    # Only for its bundled Swagger UI files and template: the API docs load nothing from a CDN.
    "ninja",
    "axes",
    "portal",
    "releases",
    "releases.image_check",
    "releases.proxy",
    "releases.entitlements",
    "registries",
    "registries.mirror",
]

MIDDLEWARE = [
    # First: times every request and sees the status the client got (portal/observability).
    "portal.observability.middleware.request_metrics",
    # First: probes reach the pod's address over plain HTTP (portal/health.py).
    "portal.health.probe_middleware",
    "portal.hosts.previous_hosts_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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
                "portal.context_processors.membership",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    try:
        # A new connection per request: under ASGI each request's sync code runs in a thread
        # of its own, and a persistent connection (CONN_MAX_AGE) stays open with the thread gone,
        # until PostgreSQL refuses more clients (50 users at once exhausted max_connections).
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    except ValueError as e:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {e}") from None
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("PORTAL_SQLITE_PATH", str(VAR_DIR / "portal.sqlite3")),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; the busy timeout makes a second writer wait
    # instead of failing with "database is locked"; IMMEDIATE takes the write lock up front so
    # a read-then-write transaction cannot deadlock on lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("PORTAL_SQLITE_TEST_PATH") or None}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "releases-app-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Login throttling (django-axes): lock a username+address pair after repeated failures.
AXES_FAILURE_LIMIT = envint("PORTAL_LOGIN_FAILURE_LIMIT", "5", minimum=1)
AXES_COOLOFF_TIME = envint("PORTAL_LOGIN_COOLOFF_MINUTES", "15", minimum=1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# HTTPS-only settings follow the scheme of PORTAL_URL.
SESSION_COOKIE_SECURE = PORTAL_HTTPS
CSRF_COOKIE_SECURE = PORTAL_HTTPS
SECURE_SSL_REDIRECT = PORTAL_HTTPS and envbool("PORTAL_SSL_REDIRECT", "true")
SECURE_HSTS_SECONDS = envint("PORTAL_HSTS_SECONDS", "31536000") if PORTAL_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PORTAL_HTTPS
SECURE_HSTS_PRELOAD = PORTAL_HTTPS
# Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed. The Procfile hands
# the same variable to uvicorn (--forwarded-allow-ips, else --no-proxy-headers), which sets
# the client address the throttles count; empty: the connecting address is the client.
PORTAL_TRUSTED_PROXIES = envaddresses("PORTAL_TRUSTED_PROXIES")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PORTAL_TRUSTED_PROXIES else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error reports (the DEBUG page, mail to admins) hide passwords inside connection strings too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.reporting.PortalExceptionReporterFilter"

# Celery. make run picks the broker (REDIS_URL, a private redis-server, or the filesystem).
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://, not {REDIS_URL.split(':')[0]!r}")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = Path(os.environ.get("PORTAL_QUEUE_DIR", VAR_DIR / "queue"))
    for sub in ("out", "processed", "control"):
        (_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # Kombu writes its exchange tables to ./control unless told otherwise.
        "control_folder": str(_queue_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
    # A task of a worker that died is redelivered after this many seconds, not the default hour.
    # Kombu looks for such tasks every PORTAL_TASK_RESTORE_SECONDS (its default: 10 s x 10).
    # Low values (tests) are safe: a task delivered twice finds the job's lease held and waits.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": envint("PORTAL_TASK_VISIBILITY_TIMEOUT", "300", minimum=5),
        "unacked_restore_interval": envint("PORTAL_TASK_RESTORE_SECONDS", "100", minimum=1),
        "unacked_restore_throttle": 1,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")
CELERY_BEAT_SCHEDULE = {}

# Licenses: Ed25519 private key (PEM). Generated into var/ in development.
def _generate_signing_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


PORTAL_LICENSE_SIGNING_KEY = envsecret(
    "PORTAL_LICENSE_SIGNING_KEY", _generate_signing_key, filename="license_signing_key.pem"
)

# --- Observability: logs and metrics (portal/observability) ---------------------------------
# One line per request and per task; PORTAL_LOG_FORMAT=json writes one JSON object per line.
PORTAL_LOG_FORMAT = os.environ.get("PORTAL_LOG_FORMAT", "plain").strip().lower() or "plain"
if PORTAL_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT must be plain or json, not {PORTAL_LOG_FORMAT!r}")
# /metrics answers only "Authorization: Bearer <token>"; unset, /metrics does not exist (404).
PORTAL_METRICS_TOKEN = envsecret("PORTAL_METRICS_TOKEN")
# The worker's own metrics port (0: none; its task metrics then reach /metrics through a
# PROMETHEUS_MULTIPROC_DIR shared with web on the same machine).
PORTAL_WORKER_METRICS_PORT = envint("PORTAL_WORKER_METRICS_PORT", "0")
PORTAL_WORKER_METRICS_ADDRESS = os.environ.get("PORTAL_WORKER_METRICS_ADDRESS", "127.0.0.1").strip()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.observability.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": PORTAL_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # SQL parameters hold license IDs (customers' credentials): never log queries, even
        # with LOG_LEVEL=DEBUG.
        "django.db.backends": {"level": "INFO"},
        # httpx logs every URL at INFO: presigned blob URLs (ECR -> S3) carry a signature.
        "httpx": {"level": "WARNING"},
        # httpcore's DEBUG trace holds response headers: the Location of those redirects.
        "httpcore": {"level": "INFO"},
        # botocore's DEBUG logs hold response bodies: ECR authorization tokens.
        "botocore": {"level": "INFO"},
    },
}
# --- end of observability --------------------------------------------------------------------

# Registries
# Connect to loopback/private/link-local registry addresses (tests, on-premises registries).
PORTAL_ALLOW_PRIVATE_REGISTRIES = envbool("PORTAL_ALLOW_PRIVATE_REGISTRIES", "false")
# "host=http(s)://address[:port],…": send a registry host to another address (tests, mirrors).
PORTAL_REGISTRY_HOST_MAP = os.environ.get("PORTAL_REGISTRY_HOST_MAP", "")
# Registry secrets at rest: comma-separated Fernet keys, newest first (registries/crypto.py).
def _generate_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


PORTAL_ENCRYPTION_KEYS = [
    k.strip()
    for k in envsecret("PORTAL_ENCRYPTION_KEYS", _generate_fernet_key, filename="encryption_keys").split(",")
    if k.strip()
]
# Beat re-checks every connected registry this often, and queues Pending validations (sweep).
PORTAL_REGISTRY_RECHECK_SECONDS = envint("PORTAL_REGISTRY_RECHECK_SECONDS", "300", minimum=10)
# An ECR registry may leave its keys empty to use the portal's own AWS credentials (instance role).
PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS = envbool("PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS", "false")
CELERY_BEAT_SCHEDULE["registries-recheck"] = {
    "task": "registries.tasks.recheck_registries",
    "schedule": PORTAL_REGISTRY_RECHECK_SECONDS,
}
CELERY_BEAT_SCHEDULE["registries-sweep-pending"] = {
    "task": "registries.tasks.sweep_pending",
    "schedule": envint("PORTAL_REGISTRY_SWEEP_SECONDS", "60", minimum=1),
}
# Mirroring: a job's lease, renewed every few seconds while copying; shorter than the
# broker's visibility timeout so a redelivered task can take over a dead worker's job.
PORTAL_MIRROR_LEASE_SECONDS = envint("PORTAL_MIRROR_LEASE_SECONDS", "60", minimum=3)
CELERY_BEAT_SCHEDULE["registries-sweep-mirrors"] = {
    "task": "registries.mirror_tasks.sweep_mirror_jobs",
    "schedule": 120,
}

# Delivery
# Proxy registry: failed logins per client address allowed per 5 minutes before 429s.
PORTAL_PROXY_AUTH_FAILURE_LIMIT = envint("PORTAL_PROXY_AUTH_FAILURE_LIMIT", "20", minimum=1)
# Proxy registry: the pull-through blob cache (releases/proxy/blob_cache.py), one directory per
# host or pod shared by its web processes. 10 GiB holds the images of several releases of a
# typical app, so repeat pulls and many customers pulling one release cost the upstream one copy;
# a fill is skipped anyway when it would leave the disk less than 10 % (at most 2 GiB) free.
# 0 turns the cache off.
PORTAL_BLOB_CACHE_DIR = Path(os.environ.get("PORTAL_BLOB_CACHE_DIR", "").strip()
                             or VAR_DIR / "blob-cache")
PORTAL_BLOB_CACHE_BYTES = envint("PORTAL_BLOB_CACHE_BYTES", str(10 << 30), minimum=0)
# A front server on the same host that can read PORTAL_BLOB_CACHE_DIR (deploy/Caddyfile, or
# nginx) sends cached blobs itself: a hit answers with X-Accel-Redirect: /blobs/<hex> and no
# body, so the web process moves none of the bytes. Only with such a front server.
PORTAL_BLOB_CACHE_X_ACCEL = envbool("PORTAL_BLOB_CACHE_X_ACCEL", "false")
# The vendor API: failed token guesses per client address in 5 minutes, calls per token a minute.
PORTAL_API_TOKEN_FAILURE_LIMIT = envint("PORTAL_API_TOKEN_FAILURE_LIMIT", "20", minimum=1)
PORTAL_API_RATE_LIMIT = envint("PORTAL_API_RATE_LIMIT", "600", minimum=1)
# How long an API call that needs the worker (registry add/test, image checks, a promotion of a
# release still being checked) waits for its outcome before answering 202 / refusing.
PORTAL_API_WAIT_SECONDS = envint("PORTAL_API_WAIT_SECONDS", "30", minimum=1)
# After a demotion or a change of a customer's channel, a license that already pulled an image
# keeps pulling it this many days (running installs keep working); 0 revokes at once.
PORTAL_ENTITLEMENT_GRACE_DAYS = envint("PORTAL_ENTITLEMENT_GRACE_DAYS", "30", minimum=0)
# Beat queues the private-image checks the broker refused (it was down) or a dead worker lost.
CELERY_BEAT_SCHEDULE["releases-sweep-image-checks"] = {
    "task": "releases.tasks.sweep_image_checks",
    "schedule": envint("PORTAL_IMAGE_CHECK_SWEEP_SECONDS", "60", minimum=1),
}
# Beat pins the releases promoted before pins existed (network calls stay out of migrations),
# and asks upstream whether each live release's pinned digests are still there.
CELERY_BEAT_SCHEDULE["releases-backfill-pins"] = {
    "task": "releases.entitlements.tasks.backfill_pins",
    "schedule": envint("PORTAL_PIN_BACKFILL_SECONDS", "600", minimum=10),
}
CELERY_BEAT_SCHEDULE["releases-recheck-pins"] = {
    "task": "releases.entitlements.tasks.recheck_pins",
    "schedule": envint("PORTAL_PIN_RECHECK_SECONDS", "21600", minimum=60),
}
