"""axe-core for the page tests: fetched from the npm registry once per machine, never committed.

The first use runs `npm pack axe-core@VERSION` into `<repo>/.cache/axe/` (or `$AXE_DIR`),
checks the tarball against its sha256, and keeps its `package/axe.min.js` beside it; later
uses check that file's sha256 and read it from there.

    path = axe_script()                       # .cache/axe/axe-4.10.3.min.js
    problems = serious_violations(page)       # axe.run() on the page: serious and critical only
    assert not problems, describe(problems)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

VERSION = "4.10.3"
TARBALL_SHA256 = "0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292"
SCRIPT_SHA256 = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".cache" / "axe"
NPM = "npm"
IMPACTS = ("serious", "critical")  # what the suite refuses; minor and moderate ones are not failures


class AxeUnavailable(RuntimeError):
    """axe-core cannot be fetched (no npm, no registry) or the cache holds something else; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("AXE_DIR") or DEFAULT_DIR)


def axe_script(directory: Path | None = None) -> Path:
    """The path of axe.min.js (VERSION), fetched and checked on first use."""
    directory = directory or cache_dir()
    script = directory / f"axe-{VERSION}.min.js"
    if script.is_file() and _sha256(script.read_bytes()) == SCRIPT_SHA256:
        return script
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".axe-", dir=directory) as tmp:
        data = _extract(_pack(Path(tmp)))
        if _sha256(data) != SCRIPT_SHA256:
            raise AxeUnavailable(f"package/axe.min.js of axe-core {VERSION} is not the file expected.")
        staged = Path(tmp) / script.name
        staged.write_bytes(data)
        staged.replace(script)  # whole or not at all, even with another process fetching too
    return script


def _pack(directory: Path) -> Path:
    """`npm pack axe-core@VERSION` into `directory`; the tarball, checked."""
    npm = shutil.which(NPM)
    if npm is None:
        raise AxeUnavailable("npm is not installed: the accessibility tests fetch axe-core with it (Debian's npm).")
    command = [npm, "pack", f"axe-core@{VERSION}", "--silent", "--pack-destination", str(directory)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    tarball = directory / f"axe-core-{VERSION}.tgz"
    if result.returncode != 0 or not tarball.is_file():
        raise AxeUnavailable(
            f"npm could not fetch axe-core {VERSION} (exit {result.returncode}): {result.stderr.strip()}"
        )
    if _sha256(tarball.read_bytes()) != TARBALL_SHA256:
        raise AxeUnavailable(f"{tarball.name} from the registry is not the tarball expected (sha256 differs).")
    return tarball


def _extract(tarball: Path) -> bytes:
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile("package/axe.min.js")
        if member is None:
            raise AxeUnavailable(f"{tarball.name} has no package/axe.min.js.")
        return member.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- running it -----------------------------------------------------------------------------------

RUN = """async (context) => {
    const results = await axe.run(context || document, { resultTypes: ["violations"] });
    return results.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({ target: n.target, impact: n.impact, summary: n.failureSummary })),
    }));
}"""


def violations(page: Page, context: str | None = None) -> list[dict[str, Any]]:
    """Every axe violation on the page as it is now (or inside the `context` selector).

    The page's context needs `bypass_csp=True`: the policy allows no script it did not name.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    result: list[dict[str, Any]] = page.evaluate(RUN, context)
    return result


def serious_violations(page: Page, context: str | None = None) -> list[dict[str, Any]]:
    """The violations of impact serious or critical."""
    return [v for v in violations(page, context) if v["impact"] in IMPACTS]


def describe(found: list[dict[str, Any]]) -> str:
    """Each violation's id, impact and help, and the targets of its nodes, one line each."""
    lines = []
    for v in found:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        lines += [f"    {' '.join(map(str, node['target']))}: {node['summary'] or ''}" for node in v["nodes"]]
    return "\n".join(lines)
