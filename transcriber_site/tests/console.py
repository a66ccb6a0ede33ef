"""Commands as a newcomer types them at a console (`bash -c LINE`), and a browser for the servers they start.

`Console` runs a long-lived command (`make run`, `manage.py serve`, the worker) in a process
group of its own, its output in a file, and stops it with Ctrl-C: SIGINT to the group, as a
terminal sends it to make and the server under it. `Browser` fetches what the server's
console names, with its own cookies and no proxy. `check_make_run` is what `make run` must
do wherever it runs (the repository, or a fresh clone of it).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from transcriber_site.management.commands.serve import network_address

LISTENERS = re.compile(r"^ +Listeners open (http://\S+?)/$", re.MULTILINE)
SIGN_IN_LINKS = re.compile(r"^ +(http://\S+/\?token=\S+)$", re.MULTILINE)
START_SECS = 180.0  # migrate, then a server's start, on a shared 2-core machine


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Console:
    """`bash -c line` in `cwd`, running until the `with` block ends; `output()` is what it printed so far."""

    def __init__(self, line: str, cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.line, self.cwd, self.env, self.log_path = line, cwd, env, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Console:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["bash", "-c", self.line],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own: Ctrl-C reaches make and the server under it
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_SECS) -> re.Match[str]:
        """The first match of `pattern` in what the command printed; fails if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while not (match := pattern.search(self.output())):
            if not self.running():
                raise AssertionError(f"`{self.line}` ended before printing {pattern.pattern!r}:\n{tail(self.output())}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"`{self.line}` printed no {pattern.pattern!r} in {timeout:.0f} s:\n{tail(self.output())}"
                )
            time.sleep(0.2)
        return match


class Browser:
    """One visitor: its cookies (a sign-in stays), redirects followed, no proxy between it and the server."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(CookieJar())
        )

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        """(status, headers, body), error statuses included."""
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode(errors="replace")

    def first_answer(self, url: str, console: Console, timeout: float = START_SECS) -> tuple[int, dict[str, str], str]:
        """The first answer at `url`: the console prints its addresses before the server listens."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(url)
            except (urllib.error.URLError, ConnectionError) as exc:
                if not console.running() or time.monotonic() > deadline:
                    raise AssertionError(f"nothing answered at {url} ({exc}):\n{tail(console.output())}") from None
                time.sleep(0.2)


def refuses_connections(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def check_make_run(console: Console, port: int, host: str = "127.0.0.1") -> Browser:
    """What `make run [HOST=host]` must do: print where listeners go, answer there, and sign the operator in.

    Returns the operator's browser, signed in by the printed link (beyond loopback, the link
    "from another machine", at the network address).
    """
    lan = network_address()
    if host == "127.0.0.1" or lan is None:
        if host != "127.0.0.1":  # every interface, but no address another machine could use
            console.wait_for(re.compile("this machine has no network address"))
        listeners = f"http://127.0.0.1:{port}"
    else:
        listeners = console.wait_for(LISTENERS).group(1)
        assert listeners == f"http://{lan}:{port}", f"listeners are sent to {listeners}:\n{tail(console.output())}"
    console.wait_for(SIGN_IN_LINKS)
    links = SIGN_IN_LINKS.findall(console.output())
    assert links[0].startswith(f"http://127.0.0.1:{port}/?token="), tail(console.output())
    assert links[-1].startswith(f"{listeners}/?token="), f"no sign-in link at {listeners}: {links}"

    status, _, page = Browser().first_answer(f"{listeners}/", console)
    assert status == 200 and "<html" in page, f"{listeners}/ answered {status}:\n{tail(console.output())}"
    operator = Browser()
    status, _, _ = operator.get(links[-1])
    assert status == 200, f"the sign-in link answered {status}"
    status, _, admin = operator.get(f"{listeners}/admin/")
    assert status == 200 and "Site administration" in admin, f"/admin/ after the link answered {status}"
    if host == "127.0.0.1" and lan is not None:
        assert refuses_connections(lan, port), f"make run answers at {lan}:{port}, beyond loopback"
    return operator
