"""The rule for tools whole test tiers need: a missing tool fails, never skips silently.

The README promises the Pyodide, deploy and load tiers (``node``: ``scripts/setup --node``), the embedded model
(``llm``: ``scripts/setup --llm``) and the HTTP benchmark (``wrk``). ``scripts/test`` installs all of them; when
one is missing anyway, its tests fail with how to install it. A developer who knowingly runs without one sets
``EAVES_SKIP_TIERS`` (comma-separated: ``node,llm,wrk``), and those tests then skip, saying so.
"""

from __future__ import annotations

import os

import pytest

OPT_OUT = "EAVES_SKIP_TIERS"
INSTALL = {
    "node": "scripts/setup --node",
    "llm": "scripts/setup --llm",
    "wrk": "scripts/setup (as root it runs apt-get install wrk), or apt-get install wrk",
}


def opted_out() -> set[str]:
    return {name.strip() for name in os.environ.get(OPT_OUT, "").split(",") if name.strip()}


def require_tool(tier: str, present: bool, what: str) -> None:
    """Fail unless ``present``, or skip if the developer opted out of ``tier``."""
    if present:
        return
    message = f"{what} is missing: run {INSTALL[tier]}"
    if tier in opted_out():
        pytest.skip(f"{message} (skipped because {OPT_OUT} includes {tier!r})")
    pytest.fail(f"{message}; or set {OPT_OUT}={tier} to skip this tier knowingly", pytrace=False)
