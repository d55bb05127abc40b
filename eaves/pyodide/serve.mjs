// The edge on WebAssembly, locally: the Workers entry point (edge/entry.py) running in real Pyodide under
// Node, behind a plain HTTP server. Started by `eaves edge --runtime pyodide` (and `eaves up --runtime
// pyodide`), which also runs the KV sidecar and passes everything in the environment:
//
//   EAVES_EDGE_HOST, EAVES_EDGE_PORT   where to listen (127.0.0.1 by default)
//   EAVES_KV_SIDECAR_URL               the local KV (edge/emulator/kv_sidecar.py), bound as env.EAVES_KV
//   EAVES_*                            every other EAVES_ variable becomes a string var of the Worker's env,
//                                      as wrangler.toml [vars] and secrets do in production
//   EAVES_PYODIDE_SITE                 the unpacked Pyodide-side wheels (workers-runtime-sdk)
//
// Each HTTP request becomes a Fetch API Request for `Default.fetch`, with a fresh ExecutionContext whose
// waitUntil work is awaited after the response; the Response's body is written out chunk by chunk as the
// edge produces it (streams are not buffered). One Pyodide instance is one isolate, as on Workers, and
// each HTTP request runs in its own request context (iocontext.mjs): I/O objects that one request created
// cannot be used by another, as workerd enforces.
import { AsyncResource } from "node:async_hooks";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { ExecutionContext, Ratelimit } from "./bindings.mjs";
import { bootPyodide } from "./boot.mjs";
import { installIoContexts, runInRequest } from "./iocontext.mjs";
import { KvNamespace as SidecarKvNamespace } from "./kv_sidecar.mjs";
import { setWorkersEnv } from "./runtime_stubs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const host = process.env.EAVES_EDGE_HOST || "127.0.0.1";
const port = Number(process.env.EAVES_EDGE_PORT || 8787);
const site = process.env.EAVES_PYODIDE_SITE || path.join(repo, ".cache", "pyodide-site");
const kvUrl = process.env.EAVES_KV_SIDECAR_URL;
if (!kvUrl) {
  console.error("serve: EAVES_KV_SIDECAR_URL is not set (run this through `eaves edge --runtime pyodide`)");
  process.exit(2);
}

const started = performance.now();
installIoContexts(); // each HTTP request is one request context: workerd's cross-request I/O rule applies
const pyodide = await bootPyodide({ repo, site });

const env = { EAVES_KV: new SidecarKvNamespace(kvUrl) };
for (const [name, value] of Object.entries(process.env)) {
  if (name.startsWith("EAVES_") && !name.startsWith("EAVES_EDGE_") && name !== "EAVES_KV_SIDECAR_URL") {
    env[name] = value;
  }
}
if (env.EAVES_RATE_LIMIT_LIMIT && env.EAVES_RATE_LIMIT_PERIOD_S) {
  env.EAVES_RATE_LIMIT = new Ratelimit({
    limit: Number(env.EAVES_RATE_LIMIT_LIMIT),
    period: Number(env.EAVES_RATE_LIMIT_PERIOD_S),
  });
}
setWorkersEnv(env);

await pyodide.runPythonAsync(`
import site, sys
sys.dont_write_bytecode = True
site.addsitedir("/site")
sys.path.insert(0, "/repo")
from edge.entry import Default

async def handle(request, env, ctx):
    response = await Default(ctx, env).fetch(request)
    return response.js_object
`);
const handle = pyodide.globals.get("handle");

function fetchRequest(req, body) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const hasBody = !["GET", "HEAD"].includes(req.method);
  return new Request(`http://${req.headers.host || `${host}:${port}`}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? body : undefined,
  });
}

function crashed(res, error) {
  console.error("serve: the edge failed:", error);
  if (res.headersSent) {
    res.destroy(error);
    return;
  }
  const body = JSON.stringify({
    error: { message: `the edge failed: ${error}`, type: "server_error", code: "edge_crashed", param: null },
  });
  res.writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => runInRequest(() => serve(req, res)));

async function serve(req, res) {
  const ctx = new ExecutionContext();
  try {
    const parts = [];
    for await (const part of req) parts.push(part);
    const response = await handle(fetchRequest(req, Buffer.concat(parts)), env, ctx);
    const headers = {};
    for (const [name, value] of response.headers) {
      headers[name] = name in headers ? [].concat(headers[name], value) : value;
    }
    res.writeHead(response.status, headers);
    if (response.body) {
      const reader = response.body.getReader();
      // Bound to this request's context: the socket's events fire outside it, and the reader is this request's.
      res.on("close", AsyncResource.bind(() => {
        if (!res.writableFinished) reader.cancel().catch(() => {}); // the client left: stop the edge's stream
      }));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
    }
    res.end();
  } catch (error) {
    crashed(res, error);
  }
  ctx.drain().catch((error) => console.error("serve: background work failed:", error));
}
server.keepAliveTimeout = 75_000;
server.listen(port, host, () => {
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`eaves edge (Pyodide ${pyodide.version}) listening on http://${host}:${port} after ${seconds} s`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
