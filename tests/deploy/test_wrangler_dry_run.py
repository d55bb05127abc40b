"""The deploy tier: `wrangler deploy --dry-run` validates wrangler.toml and builds the Worker's bundle,
offline, with the pinned wrangler on the pinned Node 22."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.node_tools import NODE22, NODE_MODULES, REPO, require

WRANGLER = NODE_MODULES / "wrangler" / "bin" / "wrangler.js"
PYODIDE_WHEELS = REPO / ".cache" / "pyodide-wheels"  # the pinned SDK wheel that stage-worker vendors
# Cloudflare's limits on a Worker's size after compression: 3 MB on the free plan, 10 MB on paid plans.
FREE_PLAN_LIMIT = 3 * 1000 * 1000
FORBIDDEN_PREFIXES = ("origin/", "tests/", "eaves/", "loadtest/", "edge/emulator/", "node_modules/", ".venv/",
                      ".cache/")


def _offline_env(home: Path) -> dict[str, str]:
    """Wrangler with no account, no telemetry and its state in a temporary folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "CF_", "WRANGLER_"))}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(home),
        "WRANGLER_SEND_METRICS": "false",
        "WRANGLER_SEND_ERROR_REPORTS": "false",
        "WRANGLER_LOG_PATH": str(home / "logs"),
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        "PATH": f"{NODE22.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def test_wrangler_dry_run_bundles_only_the_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The dry run succeeds and the bundle holds the edge's modules, the model, the pinned workers SDK and
    nothing of origin/ or tests/."""
    require(NODE22, WRANGLER, PYODIDE_WHEELS)
    home, out = tmp_path / "home", tmp_path / "bundle"
    home.mkdir()
    result = subprocess.run(
        [str(NODE22), str(WRANGLER), "deploy", "--dry-run", "--outdir", str(out)],
        cwd=REPO, env=_offline_env(home), capture_output=True, text=True, timeout=180, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"wrangler deploy --dry-run failed:\n{output}"

    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file() and p.name != "README.md"}
    # wrangler names the main module (build/worker/edge/entry.py) by its file name.
    assert "entry.py" in files, sorted(files)
    assert "class Default(WorkerEntrypoint)" in files["entry.py"].read_text()
    for module in ("edge/app.py", "edge/ports.py", "shared/kv.py"):
        assert module in files, f"{module} missing from the bundle: {sorted(files)}"
    leaked = sorted(name for name in files if name.startswith(FORBIDDEN_PREFIXES))
    assert not leaked, f"files the worker does not need are in the bundle: {leaked}"
    assert "shared/kv_lmdb.py" not in files

    # The intent model and policy, loaded at import (inside deploy's memory snapshot).
    for data in ("shared/intent/data/intent.onnx", "shared/intent/data/policy.toml"):
        assert data in files, f"{data} missing from the bundle: {sorted(files)}"
    # The workers SDK: workerd ships none from this compatibility date (enable_python_external_sdk), so
    # `import workers` works only if the bundle vendors the pinned wheel (scripts/stage-worker).
    version = re.search(r"^workers-runtime-sdk==(\S+)", (REPO / "requirements" / "pyodide.txt").read_text(),
                        re.MULTILINE)
    assert version is not None
    assert "python_modules/workers/__init__.py" in files and "python_modules/workers/rpc.py" in files, sorted(files)
    metadata = files[f"python_modules/workers_runtime_sdk-{version.group(1)}.dist-info/METADATA"].read_text()
    assert f"Version: {version.group(1)}" in metadata
    config = tomllib.loads((REPO / "wrangler.toml").read_text())
    assert config["compatibility_date"] >= "2026-04-21"  # the date that turns enable_python_external_sdk on
    assert "disable_python_external_sdk" not in config.get("compatibility_flags", [])

    total = sum(p.stat().st_size for p in files.values())
    compressed = len(gzip.compress(b"".join(p.read_bytes() for p in files.values()), compresslevel=9))
    reported = re.search(r"Total Upload: [\d.]+ \w+ / gzip: [\d.]+ \w+", output)
    with capsys.disabled():  # the size is the point of this tier: show it on success too
        print(f"\nworker bundle: {len(files)} files, {total / 1024:.1f} KiB, gzip {compressed / 1024:.1f} KiB "
              f"(wrangler's own count: {reported.group(0) if reported else 'not printed'}); "
              f"limit {FREE_PLAN_LIMIT / 1e6:.0f} MB compressed (free), 10 MB (paid)")
    assert compressed < FREE_PLAN_LIMIT


@pytest.fixture(autouse=True)
def _no_stale_stage() -> None:
    """The stage folder and the vendored SDK are wrangler's build output; a stale one must never stand in for
    a fresh build."""
    shutil.rmtree(REPO / "build" / "worker", ignore_errors=True)
    shutil.rmtree(REPO / "python_modules", ignore_errors=True)
