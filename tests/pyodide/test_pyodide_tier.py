"""Runs the Pyodide-suitable tests inside real Pyodide under Node (tests/pyodide/harness.mjs), against
a real HTTP server on 127.0.0.1, and fails with the harness's output when anything inside fails."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.node_tools import NODE_MODULES, PYODIDE_SITE, REPO, node, require

pytestmark = pytest.mark.pyodide

# The test paths that run inside Pyodide, all in one harness run (Pyodide loads once, in ~2-5 s).
# Core tests that need httpx, starlette or LMDB (test_app, test_kv, origin, integration) stay CPython-only.
PYODIDE_TEST_PATHS = [
    "tests/pyodide/inside",
    "tests/edge/test_auth.py",
    "tests/edge/test_jwt.py",
    "tests/edge/test_rsa.py",
    "tests/edge/test_ratelimit.py",
    "tests/edge/test_breaker.py",
    "tests/edge/test_freshness.py",
    "tests/edge/test_parsing.py",
    "tests/edge/test_hostile.py",
    "tests/edge/test_responses_wire.py",
    "tests/shared/test_cache_keys.py",
    "tests/shared/test_signing.py",
    "tests/shared/test_wire.py",
    "tests/shared/test_kv.py",
    "tests/shared/intent/test_intent_policy.py",
    "tests/shared/intent/test_intent_freshness.py",
    "tests/shared/intent/test_intent_doubt.py",
    "tests/shared/intent/test_intent_records.py",
    "tests/shared/intent/test_intent_commands.py",
    "tests/shared/intent/test_intent_classifier.py",
    "tests/shared/intent/test_intent_featurise.py",
    "tests/shared/onnx_lite",
]
# What Pyodide (offline) cannot import: the tests that need it skip there and run on CPython.
CPYTHON_ONLY_MODULES = ("lmdb", "numpy", "onnxruntime")
HARNESS_TIMEOUT_S = 300


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON; `/slow` first waits a second, `/stream`
    sends chunks with pauses, `/broken` drops the connection after the first chunk."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/broken"):  # one chunk, then the connection drops mid-body
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"4\r\none,\r\n")
            self.wfile.flush()
            time.sleep(0.05)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            # ?gap=S spaces the chunks S seconds apart, so a reader sees "one," alone even on a busy machine.
            gap = float(self.path.split("gap=")[1]) if "gap=" in self.path else 0.05
            for chunk in (b"one,", b"two,", b"three"):
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                except OSError:  # the reader cancelled: what the cancel test wants
                    return
                time.sleep(gap)
            self.wfile.write(b"0\r\n\r\n")
            return
        status = int(self.path.split("/status/")[1].split("?")[0]) if "/status/" in self.path else 200
        payload = json.dumps({"method": self.command, "path": self.path, "body": body,
                              "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures, not traffic
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # The timeout test aborts /slow on purpose: the reset connection is expected, not news.
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def module_files(paths: list[str]) -> list[str]:
    """The test modules the given paths name (a folder stands for every test_*.py under it)."""
    files: list[str] = []
    for path in paths:
        target = REPO / path
        found = sorted(target.rglob("test_*.py")) if target.is_dir() else [target]
        files += [str(f.relative_to(REPO)) for f in found]
    return files


def collected_on_cpython(paths: list[str]) -> list[str]:
    """The test ids CPython's pytest collects from ``paths``: what must also run inside Pyodide."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *paths], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"collecting on CPython failed:\n{result.stdout}{result.stderr}"
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_edge_tests_pass_inside_pyodide(echo_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every Pyodide-suitable test passes inside Pyodide, with the real workers SDK and the KV fake: each test
    CPython collects from those modules passed there (or skipped for want of a CPython-only module), and every
    Pyodide-only module ran, so a module or test that silently dropped out fails this."""
    require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    env = {**os.environ, "EAVES_TEST_SERVER": echo_server}
    started = time.perf_counter()
    result = subprocess.run(
        [node(), str(REPO / "tests" / "pyodide" / "harness.mjs"), "-q", "-rA", *PYODIDE_TEST_PATHS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=HARNESS_TIMEOUT_S, check=False,
    )
    output = result.stdout + result.stderr
    lines = output.splitlines()
    timings = [line for line in lines if line.startswith("harness:")]
    with capsys.disabled():  # load and run times, visible on success too
        print("\n" + "\n".join(timings) + f"\npyodide tier: {time.perf_counter() - started:.1f} s wall")
    assert result.returncode == 0, f"pytest inside Pyodide exited with {result.returncode}:\n{output}"
    summary = [line for line in lines if re.search(r" passed.* in [\d.]+s", line)]
    assert summary, f"no pytest summary line in the harness's output:\n{output}"

    skips = [line for line in lines if line.startswith("SKIPPED")]
    unexpected = [line for line in skips if not any(f"could not import '{m}'" in line for m in CPYTHON_ONLY_MODULES)]
    assert not unexpected, f"tests skipped inside Pyodide for another reason than a CPython-only module:\n{output}"
    skipped_per_file: Counter[str] = Counter()
    for line in skips:  # "SKIPPED [2] tests/x/test_y.py:12: could not import 'numpy'"
        match = re.match(r"SKIPPED \[(\d+)\] ([^:]+):", line)
        assert match, line
        skipped_per_file[match.group(2)] += int(match.group(1))
    passed = {line.split(" ", 1)[1] for line in lines if line.startswith("PASSED ")}

    inside = [path for path in PYODIDE_TEST_PATHS if path.startswith("tests/pyodide/inside")]
    shared_paths = [path for path in PYODIDE_TEST_PATHS if path not in inside]
    expected = collected_on_cpython(shared_paths)
    missing = sorted(set(expected) - passed)
    missing_per_file = Counter(test.split("::", 1)[0] for test in missing)
    unexplained = {f: n for f, n in missing_per_file.items() if n != skipped_per_file.get(f, 0)}
    assert not unexplained, (f"tests CPython collects that did not pass inside Pyodide (per module: missing, "
                             f"not explained by a CPython-only skip): {unexplained}\n" + "\n".join(missing))
    ran_modules = {test.split("::", 1)[0] for test in passed}
    for module in module_files(shared_paths):
        assert module in ran_modules or skipped_per_file.get(module), f"{module} ran no test inside Pyodide"
    for module in module_files(inside):
        assert module in ran_modules, f"{module} (Pyodide-only) ran no test inside Pyodide"
    total = re.search(r"(\d+) passed", summary[-1])
    assert total and int(total.group(1)) == len(passed)
