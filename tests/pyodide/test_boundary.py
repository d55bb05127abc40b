"""The platform boundary: only the Workers adapters and the entry point may import the runtime's modules."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.node_tools import REPO

RUNTIME_MODULES = {"js", "pyodide", "workers", "_cloudflare_compat_flags", "_pyodide_entrypoint_helper"}
ALLOWED = {"edge/entry.py"}
ALLOWED_DIRS = ("edge/workers/",)


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_adapters_import_the_runtime() -> None:
    """No module of edge/ or shared/ outside edge/workers/ and edge/entry.py imports js, pyodide or workers."""
    offenders = []
    for path in sorted([*REPO.glob("edge/**/*.py"), *REPO.glob("shared/**/*.py")]):
        rel = path.relative_to(REPO).as_posix()
        if rel in ALLOWED or rel.startswith(ALLOWED_DIRS):
            continue
        if found := _imported_roots(path.read_text()) & RUNTIME_MODULES:
            offenders.append(f"{rel}: {sorted(found)}")
    assert not offenders, "platform-neutral modules import the Workers runtime:\n" + "\n".join(offenders)


def test_the_core_imports_without_the_runtime() -> None:
    """Importing the edge core and shared code in a fresh CPython never pulls in js, pyodide or workers."""
    probe = ("import sys, edge.app, edge.ports, edge.settings, shared.kv, shared.cache_keys; "
             "print(sorted({'js', 'pyodide', 'workers'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
