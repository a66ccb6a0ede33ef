"""Every command of the README works as written, in a fresh clone: the first hour as a newcomer meets it.

The commands are the lines of the README's ```sh blocks and the inline code spans that are
whole commands (make, .venv/bin/..., python, pip, curl, docker or sudo with arguments,
after any VAR=value). Each one is either run here, exactly as written (`bash -c LINE`), or named
in NOT_RUN with the reason; a command in neither fails the fast test below.

The walk clones the repository's committed HEAD (uncommitted changes are not in it) and
runs the commands in the README's order, as a newcomer following it does: `make run` first
(it migrates), then the rest, one shell line at a time (a variable a line sets, like
TOKEN=..., is kept for the next lines, as the newcomer's shell keeps it). Shared with the
repository is only `.venv`, linked into the clone: making one takes minutes and the network.
The database is a throwaway file; MEDIA_DIR is the clone's own media/ (as a fresh clone has
it, with demo.wav), so nothing touches the repository. None of the server's settings come
from the environment of whoever runs the test.

* Servers (`make run`, `manage.py serve`) are started, must answer at the address they print
  (and sign the operator in with the link they print), and are stopped with Ctrl-C; the
  worker must say it takes sessions. Ports 8000 and 9000 in a command become free ones, so
  that no server already on the machine answers in its place.
* download_model needs the Hugging Face hub: it must fail at once with its sentence.
  HF_ENDPOINT points at a closed port, so that this holds where there is a network too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from transcriber_site.cluster import RedisServer
from transcriber_site.management.commands.serve import network_address
from transcriber_site.testing import BASE_DIR, free_port
from transcriber_site.tests.console import LISTENERS, Browser, Console, check_make_run, tail

NO_DOCKER = "needs a Docker engine (and the GPU image), which the machines that run the tests lack"
GPU_ONLY = "swaps onnxruntime for onnxruntime-gpu, on a GPU machine only (the Dockerfile does it and checks it)"
NOT_RUN: dict[str, str] = {
    # `make test` is what CI runs (.ci/run); this test is part of it, so it would run itself.
    "make test": "what CI runs (.ci/run), and this test is part of it",
    ".venv/bin/pytest -m chaos": "part of the suite, which `make test` runs whole",
    "sudo update-alternatives --config x-www-browser": "interactive, and it sets the machine's default browser",
    "SECRET_KEY=... PUBLIC_IP=203.0.113.10 docker compose up --build": NO_DOCKER,
    "docker compose run --rm worker python manage.py download_model parakeet-tdt --int8": NO_DOCKER,
    "docker compose up --scale worker=4": NO_DOCKER,
    "docker compose exec web-1 python manage.py sign_in_link http://203.0.113.10:8000": NO_DOCKER,
    "pip uninstall -y onnxruntime": GPU_ONLY,
    "pip install --no-deps --require-hashes -r requirements-gpu.lock": GPU_ONLY,
    "make lock": "regenerates the lock files from the package index: it rewrites tracked files",
    "make cluster": "a whole deployment of its own: test_make_cluster.py runs it, test_topology.py drives it",
    "make cluster HOST=0.0.0.0 PORT=9000": "make cluster on every interface: test_make_cluster.py runs make cluster",
    "pip check": GPU_ONLY,
    "make bench": "every benchmark, one after another: the better part of an hour, to measure (Measured)",
    ".venv/bin/python docs/screenshots.py": (
        "remakes the README's pictures (a minute-long Playwright run of its own that rewrites docs/screenshots/): "
        "run by hand when the page changes; the page tests drive everything it shows"
    ),
}
BENCHMARK = re.compile(r"^\.venv/bin/python bench/\w+\.py\b")  # one benchmark: minutes, to measure

# The settings a newcomer's shell does not set: the walk's commands get only the walk's own.
SERVER_SETTINGS = re.compile(
    r"^(ALLOWED_HOSTS|PORT|HOST|DATABASE_URL|REDIS_URL|MEDIA_DIR|SECRET_KEY|DEBUG|WHISPER_MODEL|OPEN_ACCESS|"
    r"LISTEN_ACCESS|WS_HOST|PUBLIC_IP|USE_GPU|UPLOAD_TEMP_DIR|TDT_MODEL_PATH|CANARY_MODEL_PATH|DIAR_MODEL_PATH|"
    r"DJANGO_SETTINGS_MODULE|HF_\w+|\w+_proxy|\w+_PROXY|TOKEN)$"
)
# A span is a command when a program is followed by its arguments (`sudo` alone names the program).
COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S*\s+)*(?:make|\.venv/bin/\S+|python3?|pip|curl|docker|sudo)\s+\S")
WORDS = "live transcription server"  # what the demo recording says


# --- The README's commands -------------------------------------------------------------


def readme_commands(readme: str) -> list[str]:
    """The README's commands, in its order, each once, without its comment."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"^ *```sh\n(.*?)^ *```", readme, re.MULTILINE | re.DOTALL):
        offset = block.start(1)
        for line in block.group(1).splitlines(keepends=True):
            if command := re.sub(r"(^|\s+)#.*$", "", line).strip():
                found.append((offset, command))
            offset += len(line)
    prose = re.sub(r"^ *```.*?^ *```", lambda m: " " * len(m.group(0)), readme, flags=re.MULTILINE | re.DOTALL)
    found += [(m.start(), m.group(1)) for m in re.finditer(r"`([^`\n]+)`", prose) if COMMAND_START.match(m.group(1))]
    return list(dict.fromkeys(command for _, command in sorted(found)))


def test_every_readme_command_is_run_or_says_why_not() -> None:
    commands = readme_commands((BASE_DIR / "README.md").read_text())

    unknown = [c for c in commands if c not in NOT_RUN and not BENCHMARK.match(c) and check_for(c) is None]
    stale = [c for c in NOT_RUN if c not in commands]

    assert not unknown, f"README commands this test neither runs nor excuses (add a check or a reason): {unknown}"
    assert not stale, f"NOT_RUN names commands the README no longer has: {stale}"
    assert "make run" in commands and commands.index("make run") == 0  # the first thing a newcomer runs


# --- The walk --------------------------------------------------------------------------


@dataclass
class Walk:
    """A fresh clone, its throwaway settings, and what the newcomer's shell holds so far."""

    clone: Path
    root: Path
    env: dict[str, str]
    logs: int = 0
    variables: dict[str, str] = field(default_factory=dict)

    def shell_env(self, **settings: str) -> dict[str, str]:
        return self.env | self.variables | settings

    def run(self, command: str, typed: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The command, run to its end; it must succeed."""
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.clone,
            env=self.shell_env(),
            input=typed,
            stdin=None if typed is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # no terminal to take: a password prompt reads what is typed on stdin
        )
        assert result.returncode == 0, f"exit {result.returncode}:\n{tail(result.stdout + result.stderr)}"
        return result

    def console(self, command: str, **settings: str) -> Console:
        self.logs += 1
        return Console(command, self.clone, self.shell_env(**settings), self.root / f"console-{self.logs}.log")


def on_free_port(command: str, port: int) -> str:
    return re.sub(r"\b(8000|9000)\b", str(port), command)


def check_make(walk: Walk, command: str) -> None:
    port = free_port()
    host = "0.0.0.0" if "HOST=0.0.0.0" in command else "127.0.0.1"
    with walk.console(on_free_port(command, port), PORT=str(port)) as run:
        operator = check_make_run(run, port, host)
        lan = network_address() if host == "0.0.0.0" else None
        status, _, media = operator.get(f"http://{lan or '127.0.0.1'}:{port}/api/media")
    assert status == 200 and "demo.wav" in media, f"the operator's library: {status} {media[:200]}"


def check_serve(walk: Walk, command: str) -> None:
    port = free_port()
    with walk.console(on_free_port(command, port), PORT=str(port)) as server:
        listeners = server.wait_for(LISTENERS).group(1)
        lan = network_address()
        assert listeners == f"http://{lan or '127.0.0.1'}:{port}", tail(server.output())
        status, _, page = Browser().first_answer(f"{listeners}/", server)
        assert status == 200 and "<html" in page, f"{listeners}/ answered {status}"
        assert "?token=" not in server.output()  # no --sign-in-link, no link


def check_curl(walk: Walk, command: str) -> None:
    """The script's call, while `make run` serves (as the README says it runs)."""
    assert "TOKEN" in walk.variables, "no TOKEN: the README makes none before this line"
    assert shutil.which("curl"), "curl is not installed"
    port = free_port()
    with walk.console("make run", PORT=str(port)) as run:
        Browser().first_answer(f"{run.wait_for(LISTENERS).group(1)}/", run)
        answer = walk.run(on_free_port(command, port)).stdout
    assert '"demo.wav"' in answer, tail(answer)


def check_token(walk: Walk, command: str) -> None:
    """`TOKEN=$(...)`: the line runs, and its shell keeps TOKEN for the lines that follow."""
    name = command.split("=", 1)[0]
    value = walk.run(f'{command}\nprintf "%s" "${name}"').stdout.strip()
    assert re.fullmatch(r"[\w-]{40,}", value), f"{name} is {value!r}, not a key"
    walk.variables[name] = value


def check_worker(walk: Walk, command: str) -> None:
    with RedisServer(walk.root) as redis, walk.console(command, REDIS_URL=redis.url) as worker:
        worker.wait_for(re.compile(r"worker \S+ taking sessions"))
        assert worker.stop() == 0, tail(worker.output())
    assert re.search(r"worker \S+ stopped", worker.output()), tail(worker.output())


def check_no_hub(walk: Walk, command: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", command], cwd=walk.clone, env=walk.shell_env(), capture_output=True, text=True, timeout=60
    )
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"it succeeded without the hub:\n{tail(output)}"
    assert "cannot be reached from this machine" in output and "by hand" in output, tail(output)
    assert took < 30, f"it took {took:.0f} s to say so"


def check_password(walk: Walk, command: str) -> None:
    name = command.split()[-1]
    output = walk.run(command, typed="a long passphrase for the test\n" * 2).stdout
    assert f"Password changed successfully for user '{name}'" in output, tail(output)


def check_operator(walk: Walk, command: str) -> None:
    name = command.split()[3]
    output = walk.run(command).stdout
    assert re.search(rf"(created|updated) operator {name}\b", output), tail(output)
    if "--token" in command:
        assert re.fullmatch(r"[\w-]{40,}", output.strip().splitlines()[-1]), tail(output)


def check_transcribe(walk: Walk, command: str) -> None:
    output = walk.run(command).stdout
    assert WORDS in output.lower(), tail(output)
    if "--format srt" in command:
        assert "-->" in output, tail(output)


def check_succeeds(walk: Walk, command: str) -> None:
    walk.run(command)


def check_for(command: str) -> Callable[[Walk, str], None] | None:
    """How the walk checks one README command; None: it has no check."""
    checks: list[tuple[str, Callable[[Walk, str], None]]] = [
        (r"make run( HOST=0\.0\.0\.0| PORT=9000)?", check_make),
        (r"\.venv/bin/python manage\.py serve --host 0\.0\.0\.0", check_serve),
        (r"\.venv/bin/python manage\.py transcription_worker", check_worker),
        (r"\.venv/bin/python manage\.py download_model (parakeet-tdt|canary-1b|sortformer)( --int8)?", check_no_hub),
        (r"\.venv/bin/python manage\.py download_model whisper", check_succeeds),
        (r"\.venv/bin/python manage\.py changepassword \w+", check_password),
        (r"\.venv/bin/python manage\.py create_operator \w+( --token)?", check_operator),
        (
            r"\.venv/bin/python manage\.py transcribe media/demo\.wav( --format \w+| --live --partials)?",
            check_transcribe,
        ),
        (r"\.venv/bin/python manage\.py (migrate|scan_media|scan_media --prune)", check_succeeds),
        (r"TOKEN=\$\(\.venv/bin/python manage\.py create_operator \w+ --token \| tail -n 1\)", check_token),
        (r'curl -H "Authorization: Bearer \$TOKEN" http://127\.0\.0\.1:8000/api/\w+', check_curl),
    ]
    return next((check for pattern, check in checks if re.fullmatch(pattern, command)), None)


def fresh_clone(destination: Path) -> Path:
    """The repository's committed HEAD, cloned, with the repository's `.venv` linked in."""
    subprocess.run(["git", "clone", "--quiet", str(BASE_DIR), str(destination)], check=True)
    (destination / ".venv").symlink_to(BASE_DIR / ".venv")
    for requirements in destination.glob("requirements*"):
        os.utime(requirements, (0, 0))  # as old as the linked venv's stamps: make installs nothing into it
    return destination


@pytest.fixture
def walk(tmp_path: Path) -> Walk:
    if not (BASE_DIR / ".venv" / ".stamp-runtime").exists():
        pytest.fail("the repository's .venv was not made by make (no .stamp-runtime): run `make test` first")
    clone = fresh_clone(tmp_path / "clone")
    env = {name: value for name, value in os.environ.items() if not SERVER_SETTINGS.match(name)}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_DIR": str(clone / "media"),
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there: no hub, network or not
    }
    return Walk(clone, tmp_path, env)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_readme_command_works_as_written_in_a_fresh_clone(walk: Walk) -> None:
    commands = readme_commands((walk.clone / "README.md").read_text())
    failures: list[str] = []
    ran = 0
    for command in commands:
        check = check_for(command)
        if check is None:
            if command not in NOT_RUN and not BENCHMARK.match(command):
                failures.append(f"`{command}`: neither run nor excused (give it a check, or a reason in NOT_RUN)")
            continue
        try:
            check(walk, command)
            ran += 1
        except Exception as exc:  # every command is tried; the report names each one that failed
            failures.append(f"`{command}`:\n{exc}")

    assert not failures, "README commands that do not work as written:\n\n" + "\n\n".join(failures)
    assert ran >= 10
