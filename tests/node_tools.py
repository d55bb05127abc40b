"""The one rule for tests that need the pinned JavaScript tooling (located by ``eaves.pyodide``).

``scripts/setup --node`` installs it (package-lock.json, requirements/pyodide.txt). Without it these tests
fail, saying how to install it, unless ``EAVES_SKIP_TIERS`` includes ``node`` (see ``tests.tiers``): a
missing install step never passes as green.
"""

from __future__ import annotations

from pathlib import Path

from eaves import pyodide as tooling
from eaves.pyodide import NODE22, NODE_MODULES, PYODIDE_SITE, REPO
from tests.tiers import require_tool

__all__ = ["NODE22", "NODE_MODULES", "PYODIDE_SITE", "REPO", "node", "require"]


def require(*paths: Path) -> None:
    """Fail (or skip, when the node tier is opted out) unless every path exists."""
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    require_tool("node", not missing, ", ".join(missing))


def node() -> str:
    """The pinned Node 22 when installed, else the machine's; fails (or skips, opted out) when there is none."""
    try:
        return tooling.node()
    except tooling.PyodideSetupError:
        require(NODE22)
        raise
