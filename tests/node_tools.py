"""The one rule for tests that need the pinned JavaScript tooling (located by ``eaves.pyodide``).

``scripts/setup --node`` installs it (package-lock.json, requirements/pyodide.txt). A developer without it
gets a skip that says how to install it; CI (the ``CI`` environment variable set) gets a failure instead,
so a missing install step can never pass as green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eaves import pyodide as tooling
from eaves.pyodide import NODE22, NODE_MODULES, PYODIDE_SITE, REPO

__all__ = ["NODE22", "NODE_MODULES", "PYODIDE_SITE", "REPO", "node", "require"]


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
    """The pinned Node 22 when installed, else the machine's; skips (fails in CI) when there is none."""
    try:
        return tooling.node()
    except tooling.PyodideSetupError:
        require(NODE22)
        raise
