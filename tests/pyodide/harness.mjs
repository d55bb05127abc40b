// Runs pytest inside real Pyodide under Node, offline, and exits with pytest's exit code.
//
//   node tests/pyodide/harness.mjs [pytest arguments...]      (paths relative to the repo root)
//   npm run test:pyodide -- [pytest arguments...]             (the self-tests and adapter tests)
//
// Needs `scripts/setup --node` (node_modules/pyodide and .cache/pyodide-site). Inside Pyodide:
//   /repo   the repository (Node FS mount; pytest's cache and bytecode writing are off)
//   /site   the pure-Python wheels of requirements/pyodide.txt, added as a site directory
//   workers                the real workers-runtime-sdk, importable as in a Python Worker
//   eaves_fakes            KvNamespace, Ratelimit, ExecutionContext (bindings.mjs), setWorkersEnv, and
//                          runInRequest / serveRequest (iocontext.mjs: one request's context, with workerd's
//                          refusal of cross-request I/O installed for the whole run)
// Environment variables pass through, so a CPython test can hand over e.g. a server's URL.
//
// Coroutine tests: tests/conftest.py runs them with asyncio.run, which in Pyodide needs WebAssembly
// stack switching (JSPI). Node ≤ 22 has it behind a V8 flag that cannot be set after start-up, so the
// harness re-executes itself with the flag when it is missing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Node 20 exposes the older JSPI API (WebAssembly.Suspender), Node 22 the current one (Suspending).
if (!("Suspending" in WebAssembly || "Suspender" in WebAssembly)) {
  const major = Number(process.versions.node.split(".")[0]);
  const flag = major >= 22 ? "--experimental-wasm-jspi" : "--experimental-wasm-stack-switching";
  if (process.execArgv.includes(flag)) {
    console.error(`harness: Node ${process.version} has no WebAssembly stack switching even with ${flag}`);
    process.exit(3);
  }
  const child = spawnSync(process.execPath, [...process.execArgv, flag, ...process.argv.slice(1)], {
    stdio: "inherit",
  });
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const site = path.join(repo, ".cache", "pyodide-site");
if (!existsSync(path.join(site, "pytest"))) {
  console.error(`harness: ${site} has no wheels unpacked: run scripts/setup --node`);
  process.exit(4);
}

const { bootPyodide } = await import("../../eaves/pyodide/boot.mjs");
const { KvNamespace, Ratelimit, ExecutionContext } = await import("../../eaves/pyodide/bindings.mjs");
const { setWorkersEnv } = await import("../../eaves/pyodide/runtime_stubs.mjs");
const { installIoContexts, runInRequest, serveRequest, CROSS_REQUEST_MESSAGE } = await import(
  "../../eaves/pyodide/iocontext.mjs"
);
installIoContexts(); // workerd's rule: a request may not use I/O objects another request created

const started = performance.now();
const pyodide = await bootPyodide({ repo, site, env: process.env });
// Python's output goes straight to ours as raw bytes (not line-batched), so pytest's progress dots
// and failures read as usual.
const write = (stream) => ({ write: (bytes) => (stream.write(bytes), bytes.length) });
pyodide.setStdout(write(process.stdout));
pyodide.setStderr(write(process.stderr));
const loadMs = performance.now() - started;

pyodide.registerJsModule("eaves_fakes", {
  KvNamespace, Ratelimit, ExecutionContext, setWorkersEnv, runInRequest, serveRequest, CROSS_REQUEST_MESSAGE,
});

pyodide.globals.set("pytest_args", pyodide.toPy(process.argv.slice(2)));
pyodide.globals.set("load_ms", loadMs);
// runPythonAsync, not runPython: the call stack must start from a promising entry point for
// asyncio.run (stack switching) to work inside tests.
const code = await pyodide.runPythonAsync(`
import os, site, sys, time
sys.dont_write_bytecode = True  # the repo is mounted from the host: leave no cpython-313 .pyc behind
site.addsitedir("/site")
os.chdir("/repo")
sys.path.insert(0, "/repo")
print(f"harness: Pyodide {sys.version.split()[0]} loaded in {load_ms / 1000:.2f} s", flush=True)
import pytest
started = time.perf_counter()
code = int(pytest.main(["-p", "no:cacheprovider", *pytest_args]))
print(f"harness: pytest finished in {time.perf_counter() - started:.2f} s with exit code {code}", flush=True)
code
`);
process.exitCode = code;
