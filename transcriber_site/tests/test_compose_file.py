"""docker-compose.yml is valid Compose, and it is the topology transcriber_site/cluster.py runs.

No container engine runs on the machines that run the tests, so nothing is started here:

* validity: the file against the Compose Specification's JSON schema, the copy that
  check-jsonschema ships (`--builtin-schema vendor.compose-spec`, as its check-compose-spec
  hook runs it), plus what a schema cannot say (every service and volume named is defined);
* the topology, read with PyYAML (anchors and `<<` merges resolved, as Compose resolves
  them; `${...}` interpolated with an empty environment but SECRET_KEY): migrate runs once
  before the Django services, the web processes are `manage.py serve` on the ports nginx
  balances, the workers `manage.py transcription_worker`, and nginx renders
  deploy/nginx.conf.template to what cluster.py renders for the same addresses.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import string
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from transcriber_site.cluster import NGINX_TEMPLATE, free_port, render_nginx_site
from transcriber_site.testing import BASE_DIR

COMPOSE_FILE = BASE_DIR / "docker-compose.yml"
DOCKERFILE = BASE_DIR / "Dockerfile"
VALIDATOR = "check_jsonschema"  # pip's check-jsonschema, which ships the compose-spec schema
REQUIRED_SETTINGS = {"SECRET_KEY": "compose-test"}  # the `${NAME:?...}` ones: `up` refuses to start without
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")  # the template's; nginx's own $vars are lowercase
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
DJANGO_SETTINGS = ("REDIS_URL", "DATABASE_URL", "MEDIA_DIR", "TDT_MODEL_PATH", "CANARY_MODEL_PATH", "DIAR_MODEL_PATH")
MODEL_PATHS = DJANGO_SETTINGS[3:]
WEBRTC_SETTINGS = ("PUBLIC_IP", "ICE_SERVERS", "TURN_SERVER", "TURN_USERNAME", "TURN_PASSWORD", "TURN_SECRET")


# --- Reading the file ------------------------------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """`value` with Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`,
    `${NAME:+other}` and `$$` filled in from `env`, as `docker compose` fills them."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name)
        unset = value is None or (operator is not None and operator.startswith(":") and value == "")
        if operator in ("-", ":-"):
            return argument if unset else str(value)
        if operator in ("?", ":?"):
            assert not unset, f"{match.group(0)}: {name} is required, and the test's environment lacks it"
            return str(value)
        if operator in ("+", ":+"):
            return "" if unset else argument
        return value or ""

    return INTERPOLATION.sub(fill, value)


def resolved(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value, env) for value in node]
    return node


@functools.cache
def raw() -> dict[str, Any]:
    """The file as YAML gives it: anchors and merges resolved, `${...}` not."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


@functools.cache
def compose() -> dict[str, Any]:
    """The file as `docker compose config` sees it with SECRET_KEY set and nothing else."""
    document: dict[str, Any] = resolved(raw(), REQUIRED_SETTINGS)
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def service(name: str) -> dict[str, Any]:
    assert name in services(), f"docker-compose.yml has no service {name!r}; it has {sorted(services())}"
    return services()[name]


def command(name: str) -> list[str]:
    given = service(name).get("command")
    assert isinstance(given, list), f"{name}: the command should be a list (exec form), not {given!r}"
    return [str(word) for word in given]


def environment(name: str) -> dict[str, str]:
    given = service(name).get("environment") or {}
    if isinstance(given, list):  # the KEY=VALUE form
        given = dict(item.split("=", 1) for item in given)
    return {key: "" if value is None else str(value) for key, value in given.items()}


def depends_on(name: str) -> dict[str, str]:
    """The services `name` waits for, each with its condition."""
    given = service(name).get("depends_on") or {}
    if isinstance(given, list):
        return dict.fromkeys(given, "service_started")
    return {other: spec.get("condition", "service_started") for other, spec in given.items()}


def django_services() -> list[str]:
    """The services of the project's image (the Dockerfile's): migrate, the web processes, the workers."""
    return [name for name, spec in services().items() if "build" in spec]


def manage_py(name: str) -> list[str]:
    """The service's manage.py command and its arguments."""
    words = command(name)
    assert words[:2] == ["python", "manage.py"], f"{name} runs {words}, not `python manage.py ...`"
    return words[2:]


def web_services() -> list[str]:
    return [name for name in django_services() if manage_py(name)[0] == "serve"]


def option(words: list[str], flag: str) -> str:
    assert flag in words, f"{words} lacks {flag}"
    return words[words.index(flag) + 1]


def upstreams() -> list[str]:
    """host:port of each web process nginx balances (the proxy's WEB_SERVERS)."""
    servers = environment("proxy").get("WEB_SERVERS", "")
    found = re.findall(r"server (\S+);", servers)
    assert found, f"the proxy's WEB_SERVERS names no `server host:port;`: {servers!r}"
    return found


def template_placeholders() -> set[str]:
    return set(PLACEHOLDER.findall(NGINX_TEMPLATE.read_text()))


# --- Valid ------------------------------------------------------------------------------


def test_the_file_is_valid_against_the_compose_specification() -> None:
    assert importlib.util.find_spec(VALIDATOR), (
        "check-jsonschema is not installed: it ships the Compose Specification's schema (requirements-dev.txt)"
    )
    done = subprocess.run(
        [sys.executable, "-m", VALIDATOR, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"docker-compose.yml is not valid Compose:\n{done.stdout}{done.stderr}"


def test_every_service_and_volume_named_is_defined() -> None:
    for name in services():
        unknown = [other for other in depends_on(name) if other not in services()]
        assert not unknown, f"{name} depends on services the file does not define: {unknown}"
        assert name not in depends_on(name), f"{name} depends on itself"
    declared = set(compose().get("volumes") or {})
    for name, spec in services().items():
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):  # a named volume, not a path of the host
                assert source in declared, f"{name} mounts volume {source!r}, which `volumes:` does not declare"


def test_only_secret_key_is_required_and_the_header_says_how_to_set_it() -> None:
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):?\?", COMPOSE_FILE.read_text()))
    assert required == set(REQUIRED_SETTINGS), f"settings `up` refuses to start without: {sorted(required)}"
    assert "SECRET_KEY=... docker compose up --build" in COMPOSE_FILE.read_text(), "the header's run line"


# --- The topology of cluster.py ---------------------------------------------------------


def test_migrate_runs_once_before_every_other_django_service() -> None:
    assert manage_py("migrate")[:2] == ["migrate", "--noinput"], f"migrate runs {command('migrate')}"
    replicas = service("migrate").get("deploy", {}).get("replicas", 1)
    assert replicas == 1, f"migrate runs {replicas} times"
    assert service("migrate").get("restart", "no") == "no", "migrate is a one-shot: it must not restart"
    for name in django_services():
        if name == "migrate":
            continue
        assert manage_py(name)[0] != "migrate", f"{name} migrates too: the web processes would race"
        assert depends_on(name).get("migrate") == "service_completed_successfully", (
            f"{name} does not wait for migrate to complete: {depends_on(name)}"
        )


def test_every_django_service_waits_for_healthy_redis_and_postgresql() -> None:
    for backing in ("redis", "db"):
        assert service(backing).get("healthcheck", {}).get("test"), f"{backing} has no healthcheck"
    assert command("redis")[0] == "redis-server" and "--appendonly" in command("redis"), "redis persists"
    assert option(command("redis"), "--save") == "" and option(command("redis"), "--appendonly") == "no"
    assert "pg_isready" in service("db")["healthcheck"]["test"], "db's healthcheck is not pg_isready"
    for name in django_services():
        for backing in ("redis", "db"):
            assert depends_on(name).get(backing) == "service_healthy", f"{name} does not wait for {backing}"


def test_every_service_of_the_image_names_its_command() -> None:
    # The Dockerfile's CMD migrates, then serves on 0.0.0.0: for `docker run`, never for compose.
    assert "migrate --noinput && exec python manage.py serve" in DOCKERFILE.read_text(), "the image's CMD changed"
    for name in django_services():
        assert service(name).get("command"), f"{name} relies on the image's CMD (migrate, then serve)"


def test_the_web_processes_serve_on_the_ports_nginx_balances() -> None:
    webs = web_services()
    assert len(webs) == 2, f"two web processes, as cluster.py runs: {webs}"
    addresses = []
    for name in webs:
        words = manage_py(name)
        port = option(words, "--port")
        serve = ["serve", "--host", "127.0.0.1", "--port", port]  # as cluster.py starts it: only nginx reaches it
        assert words == serve, f"{name} runs {words}, not {serve}"
        addresses.append(f"127.0.0.1:{port}")
        env = environment(name)
        assert env.get("USE_GPU") == "false", f"{name} should play audio only (USE_GPU false): {env.get('USE_GPU')}"
        missing = [setting for setting in WEBRTC_SETTINGS if setting not in env]
        assert not missing, f"{name} lacks the WebRTC/TURN settings {missing}"
        assert service(name).get("network_mode") == "host", f"{name}: aiortc needs the host's UDP ports"
        check = " ".join(service(name).get("healthcheck", {}).get("test", []))
        assert "/api/health" in check and f"'127.0.0.1', {port}" in check, f"{name}'s healthcheck: {check!r}"
    assert sorted(upstreams()) == sorted(addresses), f"nginx balances {upstreams()}, the web processes are {addresses}"
    assert len(set(addresses)) == len(addresses), f"two web processes on one port: {addresses}"


def test_the_workers_are_transcription_workers_on_the_gpu() -> None:
    workers = [name for name in django_services() if manage_py(name)[0] == "transcription_worker"]
    assert workers == ["worker"], f"the worker services: {workers}"
    assert manage_py("worker") == ["transcription_worker"], f"the worker runs {command('worker')}"
    deploy = service("worker").get("deploy", {})
    assert deploy.get("replicas") == 2, f"two workers, as cluster.py runs: {deploy.get('replicas')}"
    devices = deploy.get("resources", {}).get("reservations", {}).get("devices", [])
    assert any("gpu" in device.get("capabilities", []) for device in devices), f"no GPU reserved: {deploy}"
    assert environment("worker").get("USE_GPU") == "true"


def test_the_proxy_renders_the_template_as_cluster_py_does() -> None:
    proxy = service("proxy")
    assert proxy["image"].startswith("nginx:") and proxy["image"] != "nginx:latest", f"pin nginx: {proxy['image']}"
    assert proxy.get("network_mode") == "host", "nginx reaches the web processes on the host's 127.0.0.1"
    mounts = {target: (source, modes) for source, target, *modes in (m.split(":") for m in proxy.get("volumes", []))}
    # The image's entrypoint renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/ (replacing
    # its stock default.conf, a server on port 80), substituting only variables of its environment.
    assert "/etc/nginx/templates/default.conf.template" in mounts, f"the proxy mounts no template there: {mounts}"
    template, modes = mounts["/etc/nginx/templates/default.conf.template"]
    assert (BASE_DIR / template).resolve() == NGINX_TEMPLATE, f"the proxy mounts {template}, not {NGINX_TEMPLATE}"
    assert modes == ["ro"], f"mount the template read-only: {template}:{modes}"

    env = environment("proxy")
    unset = sorted(template_placeholders() - set(env))
    assert not unset, f"deploy/nginx.conf.template's placeholders the proxy's environment lacks: {unset}"
    # The image's envsubst fills the template's ${NAME}s from the environment, as render_nginx_site does.
    rendered = string.Template(NGINX_TEMPLATE.read_text()).safe_substitute(env)
    expected = render_nginx_site(env["LISTEN"], upstreams(), int(env["MAX_UPLOAD_SIZE_MB"]))
    assert rendered == expected, "the proxy's nginx site differs from the one cluster.py runs"
    assert env["LISTEN"] == "0.0.0.0:8000", f"nginx listens on {env['LISTEN']} (PORT's default is 8000)"
    for name in web_services():
        assert depends_on("proxy").get(name) == "service_healthy", f"the proxy does not wait for {name}"


def test_nginx_and_the_web_processes_agree_on_the_upload_limit() -> None:
    limits = {name: environment(name).get("MAX_UPLOAD_SIZE_MB") for name in ["proxy", *django_services()]}
    assert set(limits.values()) == {"1024"}, f"MAX_UPLOAD_SIZE_MB: {limits}"
    overridden = resolved(raw(), {**REQUIRED_SETTINGS, "MAX_UPLOAD_SIZE_MB": "7"})["services"]
    limits = {name: overridden[name]["environment"]["MAX_UPLOAD_SIZE_MB"] for name in ["proxy", *django_services()]}
    assert set(limits.values()) == {"7"}, f"MAX_UPLOAD_SIZE_MB=7 does not reach every service: {limits}"


def test_every_django_service_shares_the_database_redis_and_media() -> None:
    settings = {name: {key: environment(name).get(key, "") for key in DJANGO_SETTINGS} for name in django_services()}
    for name, values in settings.items():
        missing = [key for key, value in values.items() if not value]
        assert not missing, f"{name} lacks {missing}"
    assert len({tuple(values.values()) for values in settings.values()}) == 1, f"they differ: {settings}"
    media_dir = settings["migrate"]["MEDIA_DIR"]
    for key in ("MEDIA_DIR", *MODEL_PATHS):  # the image's own defaults, for `docker run`, say the same
        value = environment("migrate")[key]
        assert f"{key}={value}" in DOCKERFILE.read_text(), f"the Dockerfile's {key} is not {value}"
        assert key == "MEDIA_DIR" or value.startswith("/models/"), f"{key}={value} is outside the models volume"
    for name in django_services():
        assert service(name).get("network_mode") == "host", f"{name} reaches Redis and PostgreSQL on 127.0.0.1"
        media = [mount for mount in service(name).get("volumes", []) if mount.split(":")[1] == media_dir]
        assert media == [f"media:{media_dir}"], f"{name} mounts {media} at MEDIA_DIR, not the shared media volume"
        assert "models:/models" in service(name).get("volumes", []), f"{name} does not mount the models volume"

    # Redis and PostgreSQL are published on the host's loopback where the URLs point.
    assert "127.0.0.1:6379:6379" in service("redis")["ports"]
    assert settings["migrate"]["REDIS_URL"].startswith("redis://127.0.0.1:6379/")
    db = environment("db")
    user, password, database = db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]
    assert "127.0.0.1:5432:5432" in service("db")["ports"]
    assert settings["migrate"]["DATABASE_URL"] == f"postgres://{user}:{password}@127.0.0.1:5432/{database}"


# --- The web processes' healthcheck, run ------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {"paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(name: str, port: int) -> int:
    """The exit status of `name`'s healthcheck, aimed at `port` instead of its own."""
    test = service(name)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], f"{name}'s healthcheck: {test}"
    own = option(manage_py(name), "--port")
    code = test[3].replace(own, str(port))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


def test_the_web_healthcheck_passes_while_the_process_answers() -> None:
    for name in web_services():
        with health_server() as (port, handler):
            for status, healthy in ((200, True), (400, True), (503, False)):
                handler.status = status
                assert (run_healthcheck(name, port) == 0) == healthy, f"{name}'s healthcheck on a {status}"
            assert set(handler.paths) == {"/api/health"}, f"{name}'s healthcheck asked for {handler.paths}"
        assert run_healthcheck(name, free_port()) != 0, f"{name}'s healthcheck passes with nothing listening"
