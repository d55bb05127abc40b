// What a Worker isolate's start costs inside Pyodide: CPU (process.cpuUsage, user + system) of importing the
// entry point (what deploy runs once to take the memory snapshot; Workers allows 1 s), then of the first and
// second chat request through `Default.fetch` (the free plan allows 10 ms of CPU per request). Prints one
// JSON line.
//
//   node eaves/pyodide/startup.mjs [REPO] [--intent-share]
//        REPO: the checkout to measure (default: this one), e.g. an older commit unpacked with `git archive`;
//        --intent-share: also report the intent model's and policy's share of the import (see below)
//
// Pyodide and the Pyodide-side wheels (the workers SDK) are this checkout's; the edge's code and the binding
// stand-ins are REPO's. The request is a chat completion with a valid API key whose prompt the shipped
// policy answers at the edge ("hello there", small talk), so no origin is involved: the CPU is the edge's.
// Node runs Pyodide on this machine's CPU, not Cloudflare's: compare the figures with each other.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { bootPyodide } from "./boot.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const intentShare = args.includes("--intent-share");
const repo = path.resolve(args.find((arg) => !arg.startsWith("--")) || path.join(here, "..", ".."));
const site = path.join(here, "..", "..", ".cache", "pyodide-site");
const bindings = await import(pathToFileURL(path.join(repo, "eaves", "pyodide", "bindings.mjs")).href);
const KvNamespace = bindings.KvNamespace ?? bindings.KVNamespace;

// The main thread's CPU (Node >= 22.19: what runs Python, as workerd counts the isolate's thread), else the
// whole process's, which also counts V8's background compiler and GC threads.
const threadClock = typeof process.threadCpuUsage === "function";
const cpuUsage = threadClock ? (since) => process.threadCpuUsage(since) : (since) => process.cpuUsage(since);

function cpuMs(since) {
  const used = cpuUsage(since);
  return (used.user + used.system) / 1000;
}

const pyodide = await bootPyodide({ repo, site });
pyodide.registerJsModule("eaves_startup", { KvNamespace, ExecutionContext: bindings.ExecutionContext });
await pyodide.runPythonAsync(`
import site, sys
sys.dont_write_bytecode = True
site.addsitedir("/site")
sys.path.insert(0, "/repo")
`);

// --intent-share: first load the shipped model and policy on their own (their modules imported, then the
// load timed), so the import's figure splits into the intent load and the rest. The import still totals both.
let intentMs = null;
let started = cpuUsage();
if (intentShare) {
  await pyodide.runPythonAsync("from edge import bootstrap");
  const loading = cpuUsage();
  await pyodide.runPythonAsync(`bootstrap.load_intent({}, runtime="lite")`);
  intentMs = cpuMs(loading);
}
// workerd refuses entropy in top-level code, which deploy runs for the snapshot ("Disallowed operation called
// within global scope", src/pyodide/internal/topLevelEntropy): the import runs with Python's sources of it
// refused the same way, so an import that draws entropy fails here as it would fail to deploy.
await pyodide.runPythonAsync(`
import os, random
_entropy = {name: getattr(os, name) for name in ("urandom", "getrandom") if hasattr(os, name)}
_random = {name: getattr(random, name) for name in ("random", "randrange", "randint", "choice", "getrandbits", "seed")}

def _refuse(*_args, **_kwargs):
    raise RuntimeError("Disallowed operation called within global scope: entropy at import (workerd refuses it "
                       "while deploy takes the memory snapshot)")

for _name in _entropy:
    setattr(os, _name, _refuse)
for _name in _random:
    setattr(random, _name, _refuse)
`);
try {
  await pyodide.runPythonAsync("import edge.entry");
} finally {
  await pyodide.runPythonAsync(`
for _name, _value in _entropy.items():
    setattr(os, _name, _value)
for _name, _value in _random.items():
    setattr(random, _name, _value)
`);
}
const importMs = cpuMs(started);

await pyodide.runPythonAsync(`
import json, time
import js
from pyodide.ffi import to_js
from eaves_startup import ExecutionContext, KvNamespace
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
from edge.entry import Default

def plain(values):
    return to_js(values, dict_converter=js.Object.fromEntries)

kv = KvNamespace.new()
key = new_api_key()
await kv.put(KEY_PREFIX + api_key_hash(key), to_js(api_key_record("acme", "pro", "startup", time.time())))
env = plain({"EAVES_KV": kv, "EAVES_ORIGIN_URL": "http://127.0.0.1:9", "EAVES_ORIGIN_SECRET": "s" * 32})

async def chat():
    body = json.dumps({"messages": [{"role": "user", "content": "hello there"}]})
    headers = plain({"authorization": f"Bearer {key}", "content-type": "application/json"})
    request = js.Request.new("https://edge.example/v1/chat/completions",
                             plain({"method": "POST", "headers": headers, "body": body}))
    response = (await Default(ExecutionContext.new(), env).fetch(request)).js_object
    await response.text()
    return f"{response.status} {response.headers.get('x-edge-route')}"
`);
const chat = pyodide.globals.get("chat");
const requests = [];
for (let i = 0; i < 3; i++) {
  started = cpuUsage();
  const outcome = await chat();
  requests.push({ cpu_ms: Number(cpuMs(started).toFixed(1)), outcome });
}
console.log(JSON.stringify({
  repo,
  pyodide: pyodide.version,
  node: process.version,
  clock: threadClock ? "main thread" : "process",
  import_cpu_ms: Number(importMs.toFixed(1)),
  intent_load_cpu_ms: intentMs === null ? null : Number(intentMs.toFixed(1)),
  first_request: requests[0],
  second_request: requests[1],
  third_request: requests[2],
}));
