// The two runtime-internal modules that workers-runtime-sdk imports and that only workerd provides.
// Everything else the SDK needs (`js`, `pyodide.ffi`, `pyodide.http`) is real Pyodide.
//
//   _cloudflare_compat_flags    compatibility flags as booleans (workerd: from the worker's
//                               compatibility date and flags). The two the SDK reads are both on from
//                               wrangler.toml's compatibility_date 2026-11-01, as workerd's
//                               compatibility-date.capnp dates them (2026-02-25 with python_workers,
//                               2026-02-17).
//   _pyodide_entrypoint_helper  workerd's bridge: the `cloudflare:workers` / `cloudflare:sockets` modules,
//                               dynamic JS imports, `patch_env`, and `patchWaitUntil` (lets ctx.waitUntil
//                               take a Python awaitable).
// Outside workerd there is no `cloudflare:*` module graph: `doAnImport` refuses with a clear error and
// sockets are absent. `cloudflareWorkersModule.env` is the env a test installs with `setWorkersEnv`.

export const compatFlags = {
  python_workflows_implicit_dependencies: true,
  python_request_headers_preserve_commas: true,
};

const workersModule = {
  env: {},
  waitUntil(promise) {
    // workerd ties this to the current request; there is none here, so keep the promise from going unhandled.
    Promise.resolve(promise).catch((error) => console.error("waitUntil task failed:", error));
  },
};

export function setWorkersEnv(env) {
  workersModule.env = env;
}

const patchedContexts = new WeakSet();

function patchWaitUntil(ctx) {
  // Only real ExecutionContexts, as the SDK's own helper does (DurableObjectState has its own).
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]" || patchedContexts.has(ctx)) return;
  const original = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (awaitable) => {
    // A Python object handed to JS is a borrowed proxy, destroyed when the call returns: keep a copy
    // until the work settles.
    const owned = typeof awaitable?.copy === "function" ? awaitable.copy() : awaitable;
    original((async () => {
      try {
        await owned;
      } finally {
        owned?.destroy?.();
      }
    })());
  };
  patchedContexts.add(ctx);
}

export const entrypointHelper = {
  cloudflareWorkersModule: workersModule,
  cloudflareSocketsModule: {
    connect() {
      throw new Error("cloudflare:sockets is not available in the Pyodide test harness");
    },
  },
  doAnImport(name) {
    return Promise.reject(new Error(`cannot import '${name}': the Pyodide test harness has no workerd module graph`));
  },
  // workerd keeps `env` patched while the generator is suspended (the body of `with patch_env(...)`).
  *patch_env_helper(patch) {
    const saved = workersModule.env;
    const entries = typeof patch?.toJs === "function" ? patch.toJs({ dict_converter: Object.fromEntries }) : patch;
    workersModule.env = Object.assign(Object.create(saved), entries instanceof Map ? Object.fromEntries(entries) : entries);
    try {
      yield;
    } finally {
      workersModule.env = saved;
    }
  },
  patchWaitUntil,
};
