"""`make test`'s apt step installs only the missing packages, with nothing recommended and nothing upgraded.

make runs against stand-ins for dpkg-query, apt-get and sudo, on a PATH of its own: the
recorded apt-get calls are what the step would ask of the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from transcriber_site.testing import BASE_DIR


def stand_ins(root: Path, missing: list[str], npm: bool) -> dict[str, str]:
    """A PATH with the tools the recipe uses; dpkg-query says `missing` are not installed."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for tool in ("grep", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    scripts = {
        "dpkg-query": (  # the package is the last argument
            f'for package; do :; done; case " {" ".join(missing)} " in *" $package "*) exit 1;; esac; '
            'printf "install ok installed"'
        ),
        "apt-get": f'echo "$*" >> {root / "apt-get.calls"}',
        "sudo": 'exec "$@"',
    }
    if npm:
        scripts["npm"] = "exit 0"
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": str(bin_dir)}


def apt_calls(root: Path) -> list[str]:
    calls = root / "apt-get.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def make_system_packages(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make") or "/usr/bin/make"
    return subprocess.run([make, "-s", "system-packages"], cwd=BASE_DIR, env=env, capture_output=True, text=True)


def test_only_the_missing_packages_are_installed_without_recommends_or_upgrades(tmp_path):
    result = make_system_packages(stand_ins(tmp_path, missing=["chromium"], npm=False))

    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == [
        "update -qq",
        "install -y -qq --no-install-recommends --no-upgrade chromium npm",
    ]
    assert "installing Debian packages: chromium npm" in result.stdout


def test_nothing_is_installed_when_everything_is_there(tmp_path):
    result = make_system_packages(stand_ins(tmp_path, missing=[], npm=True))

    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == []


def test_make_cluster_installs_only_the_deployments_packages(tmp_path):
    make = shutil.which("make") or "/usr/bin/make"
    env = stand_ins(tmp_path, missing=["postgresql", "chromium"], npm=False)

    result = subprocess.run([make, "-s", "cluster-packages"], cwd=BASE_DIR, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == [  # neither the browser nor npm: those are the page tests'
        "update -qq",
        "install -y -qq --no-install-recommends --no-upgrade postgresql",
    ]
