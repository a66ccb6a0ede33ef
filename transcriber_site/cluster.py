"""The scale-out deployment as plain processes on one machine, as the README's scale-out section runs it.

    PostgreSQL  Redis          (a throwaway cluster each; Debian's postgresql and redis-server)
        web-1  web-2           (`manage.py serve`, no embedded worker: REDIS_URL is set)
        worker-1  worker-2     (`manage.py transcription_worker`)
        nginx                  (deploy/nginx.conf.template: least connections, WebSocket upgrade)

All of them share one MEDIA_DIR. `make cluster` (`manage.py cluster`) brings this up for people
who want to try it; the topology tests (sessions_app/tests/test_topology.py) start the same one.
Nothing here imports Django: it only starts processes and hands them their environment.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = BASE_DIR / "deploy" / "nginx.conf.template"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is not installed: `make test` installs Debian's {package} package")
    return found


class Child:
    """One process of the topology, its output in `<root>/<name>.log`."""

    def __init__(self, name: str, command: list[str], root: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, user: str | None = None) -> Child:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=BASE_DIR, stdout=self._log, stderr=subprocess.STDOUT, user=user
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies without a word, as a crashed machine's would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_port(self, port: int, timeout: float = 30.0) -> None:
        assert self.process is not None
        wait_for_port(port, self.process, self.log_path, timeout)

    def wait_for_line(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not say {text!r}:\n{_tail(self.log_path)}")
            time.sleep(0.1)


class RedisServer:
    """Debian's redis-server on a free loopback port, in memory only."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()  # a port: start again where a killed one was
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child = Child(f"redis-{self.port}-{time.monotonic_ns()}", [], root)
        self.log_path = self.child.log_path

    def __enter__(self) -> RedisServer:
        binary = _binary("redis-server", "redis-server")
        self.child.command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.child.start().wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.child.stop(timeout=10)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process


class PostgresServer:
    """A throwaway PostgreSQL cluster of Debian's postgresql package, on a free loopback port.

    Made with initdb in a new directory of the system's temporary directory (removed at exit),
    trusting loopback connections, without fsync: nothing in it outlives the run. PostgreSQL
    refuses to run as root, so under root it runs as the package's `postgres` user.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.child = Child(f"postgres-{self.port}", [], root)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.data: Path | None = None

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> PostgresServer:
        bindir = postgres_bindir()
        self.data = Path(tempfile.mkdtemp(prefix="transcriber-postgres-"))
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(self.data / "data"), "-U", "postgres", "--auth=trust"]
        initdb += ["--encoding=UTF8", "--no-locale", "--no-sync"]
        made = subprocess.run(initdb, capture_output=True, text=True, user=self.user, cwd=self.data)
        if made.returncode:
            raise RuntimeError(f"initdb failed:\n{made.stdout}{made.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.data),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        self.child.command = [str(bindir / "postgres"), "-D", str(self.data / "data"), "-p", str(self.port)]
        for name, value in settings.items():
            self.child.command += ["-c", f"{name}={value}"]
        self.child.start(user=self.user).wait_for_port(self.port)
        self._until_it_answers()
        return self

    def _until_it_answers(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:  # "the database system is starting up"
                if time.monotonic() > deadline or not self.child.alive():
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __exit__(self, *exc: object) -> None:
        self.child.stop(sig=signal.SIGINT, timeout=15)  # SIGINT: PostgreSQL's fast shutdown
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)


def postgres_bindir() -> Path:
    """The newest installed major version's programs (Debian keeps them out of PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    return versions[-1].parent


class Nginx:
    """nginx in front of the web processes, with the site of deploy/nginx.conf.template."""

    def __init__(self, root: Path, listen: str, upstreams: list[str], max_upload_mb: int) -> None:
        self.root = root / "nginx"
        self.listen = listen
        self.port = int(listen.rsplit(":", 1)[1])
        self.site = render_nginx_site(listen, upstreams, max_upload_mb)
        self.child = Child("nginx", [], root)

    def __enter__(self) -> Nginx:
        binary = _binary("nginx", "nginx")
        (self.root / "temp").mkdir(parents=True, exist_ok=True)
        (self.root / "site.conf").write_text(self.site)
        config = self.root / "nginx.conf"
        config.write_text(self._main_config())
        error_log = str(self.root / "error.log")
        self.child.command = [binary, "-p", str(self.root), "-e", error_log, "-c", str(config), "-g", "daemon off;"]
        self.child.start().wait_for_port(self.port)
        return self

    def _main_config(self) -> str:
        temp = self.root / "temp"
        lines = [
            # as root, nginx's workers would run as `nobody`, which cannot enter a private directory
            "user root;" if os.geteuid() == 0 else "",
            "worker_processes 1;",
            f"pid {self.root / 'nginx.pid'};",
            f"error_log {self.root / 'error.log'} notice;",
            "events { worker_connections 1024; }",
            "http {",
            "    log_format upstreams '$request_method $request_uri $status $upstream_addr';",
            f"    access_log {self.root / 'access.log'} upstreams;",
            *(f"    {kind}_temp_path {temp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
            f"    include {self.root / 'site.conf'};",
            "}",
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def __exit__(self, *exc: object) -> None:
        self.child.stop(sig=signal.SIGQUIT, timeout=10)  # SIGQUIT: a graceful stop

    def requests(self) -> list[tuple[str, str, str, str]]:
        """(method, path, status, the web process that answered) of each request done, from the access log.

        nginx logs every web process it tried ("A, B" when A refused); the last one answered.
        """
        log = self.root / "access.log"
        requests = []
        for line in log.read_text().splitlines() if log.exists() else []:
            method, path, status, tried = line.split(" ", 3)
            requests.append((method, path, status, tried.split(", ")[-1]))
        return requests


def render_nginx_site(listen: str, upstreams: list[str], max_upload_mb: int) -> str:
    """deploy/nginx.conf.template with its placeholders filled, as the nginx image's envsubst fills them."""
    values = {
        "LISTEN": listen,
        "WEB_SERVERS": " ".join(f"server {address};" for address in upstreams),
        "MAX_UPLOAD_SIZE_MB": str(max_upload_mb),
    }
    return string.Template(NGINX_TEMPLATE.read_text()).safe_substitute(values)  # nginx's own $vars stay


class Cluster:
    """PostgreSQL, Redis, `webs` web processes behind nginx and `workers` workers, one MEDIA_DIR.

    `env` adds to (or overrides) every Django process's environment. `url` is the proxy's; each
    web process is also reachable at its own `web_urls[i]`. With `operator`, `token` is that
    operator's API token (made at start).
    """

    def __init__(
        self,
        root: Path,
        media_dir: Path,
        env: dict[str, str] | None = None,
        webs: int = 2,
        workers: int = 2,
        listen: str | None = None,
        worker_capacity: int = 0,
        operator: str | None = None,
    ) -> None:
        self.root = root
        self.media_dir = media_dir
        self.extra_env = env or {}
        self.listen = listen or f"127.0.0.1:{free_port()}"
        self.url = "http://" + self.listen
        self.web_ports = [free_port() for _ in range(webs)]
        self.web_urls = [f"http://127.0.0.1:{port}" for port in self.web_ports]
        self.worker_count = workers
        self.worker_capacity = worker_capacity
        self.webs: list[Child] = []
        self.workers: list[Child] = []
        self.operator = operator
        self.token = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = self._stack.enter_context(PostgresServer(self.root))
        self.redis = self._stack.enter_context(RedisServer(self.root))
        self.env = {
            **os.environ,
            "DATABASE_URL": self.postgres.create_database("transcriber"),
            "REDIS_URL": self.redis.url,
            "MEDIA_DIR": str(self.media_dir),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.manage("migrate", "--noinput", "-v0")
        if self.operator:
            self.token = self.manage("create_operator", self.operator, "--token").strip().splitlines()[-1]
        for number, port in enumerate(self.web_ports, 1):
            web = self._child(f"web-{number}", "serve", "--host", "127.0.0.1", "--port", str(port))
            web.wait_for_port(port, timeout=60)
            self.webs.append(web)
        for number in range(1, self.worker_count + 1):
            capacity = ["--capacity", str(self.worker_capacity)] if self.worker_capacity else []
            self.workers.append(self._child(f"worker-{number}", "transcription_worker", *capacity))
        for worker in self.workers:
            worker.wait_for_line("taking sessions", timeout=60)
        upstreams = [f"127.0.0.1:{port}" for port in self.web_ports]
        max_upload_mb = int(self.env.get("MAX_UPLOAD_SIZE_MB", "1024"))
        self.nginx = self._stack.enter_context(Nginx(self.root, self.listen, upstreams, max_upload_mb))

    def manage(self, *args: str) -> str:
        """A manage.py command against the cluster's database; its standard output."""
        done = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def _child(self, name: str, *args: str) -> Child:
        child = Child(name, [sys.executable, str(BASE_DIR / "manage.py"), *args], self.root, self.env).start()
        self._stack.callback(child.stop)
        return child

    def children(self) -> Iterator[Child]:
        yield self.postgres.child
        yield self.redis.child
        yield from self.webs
        yield from self.workers
        yield self.nginx.child
