"""Settings, all read from the environment (and an optional `.env` file).

Every variable of DESIGN.md is here with its default; the README lists them.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

django_stubs_ext.monkeypatch()  # lets admin.ModelAdmin[Model] and friends be subscripted at run time

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in `.secret_key`."""
    if key := env.str("SECRET_KEY", default=""):
        return key
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# --- The server ---------------------------------------------------------------------
PORT = env.int("PORT", default=8000)
PUBLIC_IP = env.str("PUBLIC_IP", default="")
WS_HOST = env.str("WS_HOST", default="")
# A client gets this long to send a request's headers; then the connection is closed (408).
HEADER_TIMEOUT_SECS = env.float("HEADER_TIMEOUT_SECS", default=10.0)
# Behind a reverse proxy that terminates HTTPS: the origins the page is served from
# (e.g. https://transcribe.example.org), and the header the proxy sets to say the request
# came over HTTPS. Set the header only when the proxy always sets or strips it.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])


def proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto,https` (or `HTTP_X_FORWARDED_PROTO,https`) as Django's (META key, value); empty: None."""
    if not value.strip():
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    if not header or not expected or "," in expected:
        raise ImproperlyConfigured(f"SECURE_PROXY_SSL_HEADER is header,value (X-Forwarded-Proto,https), not {value!r}")
    key = header.upper().replace("-", "_")
    return (key if key.startswith("HTTP_") else f"HTTP_{key}", expected)


SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env.str("SECURE_PROXY_SSL_HEADER", default=""))

# --- Who may do what (transcriber_site.access) ---------------------------------------
# Operators (users with the operate permission) upload, delete, start, pause and stop.
# Listeners need no account; LISTEN_ACCESS says what they may see: `public` (every session,
# listed), `link` (a session only through its share link, never listed), `operators` (nothing:
# listening needs a sign-in). OPEN_ACCESS=true lets anyone operate, for a closed demo network.
LISTEN_ACCESS = env.str("LISTEN_ACCESS", default="public")
if LISTEN_ACCESS not in ("public", "link", "operators"):
    raise ImproperlyConfigured(f"LISTEN_ACCESS is public, link or operators, not {LISTEN_ACCESS!r}")
OPEN_ACCESS = env.bool("OPEN_ACCESS", default=False)
# A one-time sign-in link (`serve --sign-in-link`, which `make run` uses) works this long.
SIGN_IN_LINK_TTL_SECS = env.int("SIGN_IN_LINK_TTL_SECS", default=3600)
LOGIN_URL = "sign-in"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "index"

# --- Models -------------------------------------------------------------------------
USE_GPU = env.bool("USE_GPU", default=False)
# Threads inside one model call, and model calls run at once; 0 lets each engine choose
# (Whisper on the CPU: one single-threaded call per core; ONNX Runtime: its own defaults).
INTRA_THREADS = env.int("INTRA_THREADS", default=0)
INTER_THREADS = env.int("INTER_THREADS", default=0)
TDT_MODEL_PATH = Path(env.str("TDT_MODEL_PATH", default=str(BASE_DIR / "models" / "parakeet-tdt")))
CANARY_MODEL_PATH = Path(env.str("CANARY_MODEL_PATH", default=str(BASE_DIR / "models" / "canary-1b")))
WHISPER_MODEL = env.str("WHISPER_MODEL", default="")  # empty: the bundled tiny.en
# Which ONNX files Parakeet and Canary load: auto (int8 when present), int8, or fp32.
ONNX_PRECISION = env.str("ONNX_PRECISION", default="auto")
# Speaker diarization (streaming Sortformer): the export's file, or the directory that holds it;
# absent, sessions have no speakers. DIAR_LATENCY: low (speakers known 1.04 s after the audio) or
# high (10 s, a tenth of the model's work per second; finals wait for their speakers).
DIAR_MODEL_PATH = env.str("DIAR_MODEL_PATH", default=str(BASE_DIR / "models" / "sortformer"))
DIAR_LATENCY = env.str("DIAR_LATENCY", default="low")
if DIAR_LATENCY not in ("low", "high"):
    raise ImproperlyConfigured(f"DIAR_LATENCY is low or high, not {DIAR_LATENCY!r}")

# --- Media and sessions -------------------------------------------------------------
MEDIA_DIR = Path(env.str("MEDIA_DIR", default=str(BASE_DIR / "media"))).resolve()
MAX_UPLOAD_SIZE_MB = env.int("MAX_UPLOAD_SIZE_MB", default=1024)
# Uploads are spooled here while they arrive and convert (empty: MEDIA_DIR/.uploads, the
# server's own); each start removes what a killed process left (media_app.uploads).
UPLOAD_TEMP_DIR = env.str("UPLOAD_TEMP_DIR", default="")
MAX_CONCURRENT_SESSIONS = env.int("MAX_CONCURRENT_SESSIONS", default=10)
SESSION_TIMEOUT_SECS = env.int("SESSION_TIMEOUT_SECS", default=3600)
# Workers write a heartbeat on their sessions this often; one silent for the timeout is dead.
WORKER_HEARTBEAT_SECS = env.float("WORKER_HEARTBEAT_SECS", default=2.0)
WORKER_HEARTBEAT_TIMEOUT_SECS = env.float("WORKER_HEARTBEAT_TIMEOUT_SECS", default=10.0)
# A session no worker has taken after this long ends in error (no worker running?).
SESSION_START_TIMEOUT_SECS = env.float("SESSION_START_TIMEOUT_SECS", default=30.0)
# Sessions one worker process runs at most (0: MAX_CONCURRENT_SESSIONS).
WORKER_CAPACITY = env.int("WORKER_CAPACITY", default=0)
# Admission control (sessions_app.capacity): a new session is refused (429) when the model's
# final subtitles, as measured, would come later than this after the speech (p95) with one
# more session. 0 turns the check off.
ADMISSION_P95_SECS = env.float("ADMISSION_P95_SECS", default=2.5)
# Listeners one session takes (over all web processes), and WebSocket connections one client
# address may hold open in one web process (a class behind one NAT is one address); 0: no limit.
MAX_LISTENERS_PER_SESSION = env.int("MAX_LISTENERS_PER_SESSION", default=200)
MAX_SOCKETS_PER_ADDRESS = env.int("MAX_SOCKETS_PER_ADDRESS", default=100)

# Live sources (sessions_app.sources): a microphone whose operator's connection dropped is
# waited for this long before the session ends with what it had; a stream that sends no audio
# this long ends in error; a stream URL must give audio within LIVE_PROBE_SECS to be accepted.
LIVE_RECONNECT_SECS = env.float("LIVE_RECONNECT_SECS", default=30.0)
LIVE_STALL_SECS = env.float("LIVE_STALL_SECS", default=15.0)
LIVE_PROBE_SECS = env.float("LIVE_PROBE_SECS", default=10.0)
# Stream URLs may not reach loopback, private or link-local addresses (after DNS resolution),
# so that no caller can make the server fetch from its own network; true allows them.
STREAM_ALLOW_PRIVATE = env.bool("STREAM_ALLOW_PRIVATE", default=False)

# --- WebRTC -------------------------------------------------------------------------
ICE_SERVERS: list[dict[str, object]] = json.loads(env.str("ICE_SERVERS", default="[]"))
TURN_SERVER = env.str("TURN_SERVER", default="")
TURN_USERNAME = env.str("TURN_USERNAME", default="")
TURN_PASSWORD = env.str("TURN_PASSWORD", default="")  # static, used only while TURN_SECRET is empty
# coturn's static-auth-secret (use-auth-secret): each peer then gets its own credentials, valid
# this long (sessions_app.turn). coturn checks them when a relay is allocated, and the page
# allocates again on every reconnect with the ones it fetched at load: a day covers a page
# left open for a working day, and bounds what a copied credential is worth.
TURN_SECRET = env.str("TURN_SECRET", default="")
TURN_CREDENTIAL_TTL_SECS = env.int("TURN_CREDENTIAL_TTL_SECS", default=86400)

# --- Django -------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",  # first, so that `runserver` serves ASGI (HTTP and WebSocket)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",  # django-axes: sign-in attempts, counted and locked out
    "csp",  # django-csp: its system checks; the header itself comes from its middleware
    "transcriber_site",
    "media_app",
    "models_app",
    "sessions_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # early, so that error answers carry the header too
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "transcriber_site.lib.tokens.BearerTokenMiddleware",  # Authorization: Bearer <token>, for scripts
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out sign-in with 429
]

# Sign-in attempts (the admin's, and any other through django.contrib.auth) are throttled:
# after AXES_FAILURE_LIMIT failures for one user name from one address, that pair is locked
# out for AXES_COOLOFF_TIME; a success resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# --- Content-Security-Policy --------------------------------------------------------
# Only the server's own scripts, styles and sockets: no inline code, no frames, no plugins.


def _websocket_sources() -> list[str]:
    """connect-src sources for the player's WebSocket (static/js/player.js, webSocketUrl).

    'self' covers ws: and wss: on the page's own origin only in CSP Level 3 browsers, so
    each host the page may be served on is listed too, on any port (the page's port is
    the proxy's, not PORT). IPv6 literals cannot be written in a CSP source: 'self' it is.
    """
    if WS_HOST:
        if WS_HOST.startswith(("ws://", "wss://")):
            scheme, _, rest = WS_HOST.partition("://")
            return [f"{scheme}://{rest.split('/')[0]}"]
        return [f"ws://{WS_HOST}", f"wss://{WS_HOST}"]
    sources: list[str] = []
    for host in ALLOWED_HOSTS:
        if host == "*":
            return ["ws:", "wss:"]
        if host.startswith("["):
            continue
        names = [host[1:], f"*{host}"] if host.startswith(".") else [host]
        sources += [f"{scheme}://{name}:*" for name in names for scheme in ("ws", "wss")]
    return sources


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # the favicon is `data:,` (no request for /favicon.ico)
        "connect-src": ["'self'", *_websocket_sources()],
        "media-src": ["'self'"],  # the audio element plays a MediaStream (srcObject), not a URL
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "transcriber_site.urls"
ASGI_APPLICATION = "transcriber_site.asgi.application"

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker processes write to one file: WAL lets readers run beside a writer,
    # IMMEDIATE takes the write lock up front instead of failing half way.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# redis-py 8 reads with a 5 s socket timeout, no longer than channels_redis's 5 s BZPOPMIN
# wait: every idle receive would time out (django/channels_redis#422). The topology tests
# leave workers and sockets idle for longer than this.
REDIS_SOCKET_TIMEOUT_SECS = 30
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT_SECS}],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

# Uploads always go to a temporary file on disk (never into memory), through a handler
# that counts the bytes and stops at MAX_UPLOAD_SIZE_MB whatever the client declared;
# the file lies in UPLOAD_TEMP_DIR, locked while its request runs.
FILE_UPLOAD_HANDLERS = [
    "media_app.uploads.SizeLimitedUploadHandler",
    "media_app.uploads.LockedTemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MEDIA_ROOT = MEDIA_DIR
MEDIA_URL = "/media/"

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served straight from static/ (no collectstatic step needed to run); the Docker image
# sets STATIC_ROOT and runs collectstatic for compressed, cacheable copies.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "aioice": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # it logs its start and every failed sign-in at INFO
        "aiortc": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}
