"""The lock files pin the whole dependency tree, with hashes, and everything agrees with them.

requirements*.txt name our direct dependencies; `make lock` compiles each into its lock
(requirements*.lock: every package, its exact version, the hashes of its files, and an
environment marker where it is only needed on some Pythons or platforms). `make`, CI and the
Dockerfile install from the locks only, with `pip install --require-hashes`. These tests fail
when a lock no longer matches its source file, lacks a hash, disagrees with the other lock,
with the venv under test, or with the Makefile. Fast, no network: they only read files.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]  # the repository: transcriber_site/tests/ is two levels down
LOCKS = {  # source file -> the lock `make lock` compiles it into
    "requirements.txt": "requirements.lock",
    "requirements-dev.txt": "requirements-dev.lock",
    "requirements-gpu.txt": "requirements-gpu.lock",
}
RELOCK = "edit requirements*.txt if needed, then run `make lock`"
# Installed by venv or pip themselves, not by the lock: their absence from the venv is no fault.
NOT_ALWAYS_INSTALLED = {"pip", "setuptools", "uv"}


@dataclass(frozen=True)
class Pin:
    """One requirement line: `name==version [; marker]`, with its `--hash=` options."""

    name: str  # canonical: lower case, runs of -_. as one -
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    line: str

    def applies_here(self) -> bool:
        """Whether this Python and platform need it (no marker: everywhere)."""
        return self.marker is None or self.marker.evaluate()


def logical_lines(path: Path) -> list[str]:
    """The file's lines without comments or blanks, each backslash continuation joined to its line."""
    lines: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def parse_pin(line: str) -> Pin:
    """A requirement line; it must pin one exact version (`==`)."""
    words = line.split()
    options = [word for word in words if word.startswith("--")]
    requirement = Requirement(" ".join(word for word in words if not word.startswith("--")))
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1 and specifiers[0].operator == "==", (
        f"not pinned to one exact version (name==version): {line!r}; {RELOCK}"
    )
    hashes = tuple(option.removeprefix("--hash=") for option in options if option.startswith("--hash="))
    return Pin(canonicalize_name(requirement.name), specifiers[0].version, requirement.marker, hashes, line)


def source_pins(name: str) -> list[Pin]:
    """The packages a requirements*.txt pins itself (not those of a file it includes with -r)."""
    return [parse_pin(line) for line in logical_lines(ROOT / name) if not line.startswith("-")]


def lock_pins(name: str) -> list[Pin]:
    """Every entry of a lock. A lock holds requirements only: no -r, -c or --index-url lines."""
    lines = logical_lines(ROOT / name)
    options = [line for line in lines if line.startswith("-")]
    assert not options, f"{name} has option lines {options}: a lock lists packages only; {RELOCK}"
    return [parse_pin(line) for line in lines]


def versions_by_name(pins: list[Pin]) -> dict[str, set[str]]:
    """Each package's versions: usually one, more where markers split it (one for PyPy, one for CPython)."""
    versions: dict[str, set[str]] = {}
    for pin in pins:
        versions.setdefault(pin.name, set()).add(pin.version)
    return versions


# --- The tests -------------------------------------------------------------------------


def test_every_pin_of_a_source_file_is_in_its_lock_at_the_same_version() -> None:
    for source, lock in LOCKS.items():
        locked = versions_by_name(lock_pins(lock))
        for pin in source_pins(source):
            assert pin.name in locked, f"{source} pins {pin.name}, which {lock} lacks: {RELOCK}"
            assert locked[pin.name] == {pin.version}, (
                f"{source} pins {pin.name}=={pin.version}, {lock} has {sorted(locked[pin.name])}: {RELOCK}"
            )


def test_every_lock_entry_is_hashed() -> None:
    for lock in LOCKS.values():
        pins = lock_pins(lock)
        assert pins, f"{lock} is empty: {RELOCK}"
        for pin in pins:
            assert pin.hashes, f"{lock}: {pin.name}=={pin.version} has no --hash=sha256: {RELOCK}"
            for value in pin.hashes:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", value), (
                    f"{lock}: {pin.name} has the hash {value!r}, not sha256:<64 hex digits>: {RELOCK}"
                )


def test_each_lock_says_how_to_regenerate_it() -> None:
    for lock in LOCKS.values():
        header = (ROOT / lock).read_text().splitlines()[:5]
        assert any(line.startswith("#") and "make lock" in line for line in header), (
            f"{lock}'s header does not name `make lock`: run `make lock`"
        )


def test_the_runtime_and_dev_locks_agree() -> None:
    runtime = versions_by_name(lock_pins("requirements.lock"))
    dev = versions_by_name(lock_pins("requirements-dev.lock"))
    missing = sorted(set(runtime) - set(dev))
    assert not missing, f"requirements-dev.lock lacks runtime packages {missing}: {RELOCK}"
    for name, versions in runtime.items():
        assert dev[name] == versions, (
            f"{name}: requirements.lock has {sorted(versions)}, requirements-dev.lock {sorted(dev[name])}: {RELOCK}"
        )


def test_the_venv_under_test_is_the_dev_lock() -> None:
    reinstall = (
        "run `make lock` if you changed requirements*.txt, else install the lock: "
        "`.venv/bin/pip install --require-hashes -r requirements-dev.lock`"
    )
    for pin in lock_pins("requirements-dev.lock"):
        if not pin.applies_here():
            continue  # another Python's or platform's entry
        try:
            installed = importlib.metadata.version(pin.name)
        except importlib.metadata.PackageNotFoundError:
            assert pin.name in NOT_ALWAYS_INSTALLED, (
                f"{pin.name}=={pin.version} is locked but not installed: {reinstall}"
            )
            continue
        assert installed == pin.version, (
            f"{pin.name} {installed} is installed, requirements-dev.lock says {pin.version}: {reinstall}"
        )


def install_lines(path: Path) -> list[str]:
    """The lines of a Makefile or Dockerfile that pip-install a requirements file."""
    return [line.strip() for line in path.read_text().splitlines() if re.search(r"pip install .*-r requirements", line)]


def test_make_installs_from_the_locks_with_hashes() -> None:
    installs = install_lines(ROOT / "Makefile")
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert any(f"-r {lock}" in line and "--require-hashes" in line for line in installs), (
            f"the Makefile does not install {lock} with --require-hashes: its install stamps should, "
            f"and `make lock` regenerates the locks; found {installs}"
        )
    unhashed = [line for line in installs if "--require-hashes" not in line or ".lock" not in line]
    assert not unhashed, f"the Makefile installs without the locks' hashes: {unhashed} (use the locks; `make lock`)"


def test_the_image_installs_from_the_locks_with_hashes() -> None:
    installs = install_lines(ROOT / "Dockerfile")
    for lock in ("requirements.lock", "requirements-gpu.lock"):
        assert any(f"-r {lock}" in line and "--require-hashes" in line for line in installs), (
            f"the Dockerfile does not install {lock} with --require-hashes (`make lock` makes it); found {installs}"
        )
    unhashed = [line for line in installs if "--require-hashes" not in line or ".lock" not in line]
    assert not unhashed, f"the Dockerfile installs without the locks' hashes: {unhashed} (use the locks; `make lock`)"
