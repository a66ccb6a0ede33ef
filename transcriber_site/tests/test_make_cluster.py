"""`make cluster`: the scale-out deployment on one machine in one command, and Ctrl-C stops all of it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from transcriber_site.testing import BASE_DIR, api_call, free_port

pytestmark = pytest.mark.slow


def test_make_cluster_serves_through_nginx_from_both_web_processes_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {**os.environ, "MEDIA_DIR": str(tmp_path / "media"), "CLUSTER_DIR": str(tmp_path / "cluster")}
    leftover_databases = set(Path(tempfile.gettempdir()).glob("transcriber-postgres-*"))
    make = shutil.which("make") or "/usr/bin/make"
    run = subprocess.Popen(
        [make, "cluster", f"PORT={port}"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    try:
        said = read_until(run, "Listeners open", timeout=120)
        link = re.search(r"(http://\S+/\?token=\S+)", said)
        webs = re.search(r"web processes: (\S+), (\S+)\)", said)
        assert link and webs, said

        served_by = {api_call(f"http://127.0.0.1:{port}", "/api/health")["server"] for _ in range(6)}
        signed_in = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        signed_in.open(link.group(1), timeout=30).read()
        with signed_in.open(f"http://127.0.0.1:{port}/api/media", timeout=30) as response:
            assert response.status == 200  # the link made this browser an operator, through the proxy
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        output, _ = run.communicate(timeout=60)

    assert len(served_by) == 2, served_by  # nginx spread the requests over both web processes
    assert run.returncode in (0, -signal.SIGINT), output  # make ends as the signal ended its recipe
    for address in [f"127.0.0.1:{port}", *(url.removeprefix("http://") for url in webs.groups())]:
        host, web_port = address.split(":")
        with pytest.raises(OSError):
            socket.create_connection((host, int(web_port)), timeout=1).close()
    assert set(Path(tempfile.gettempdir()).glob("transcriber-postgres-*")) == leftover_databases  # removed


def read_until(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"make cluster did not say {text!r}:\n{''.join(lines)}")
