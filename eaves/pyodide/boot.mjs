// One way to start Pyodide for everything that runs the edge in it under Node (the local server, the test
// harness, the benchmark): the repository mounted at /repo, the Pyodide-side wheels at /site, and the two
// runtime-internal modules that workers-runtime-sdk imports (runtime_stubs.mjs) registered.
import { loadPyodide } from "pyodide";

import { compatFlags, entrypointHelper } from "./runtime_stubs.mjs";

export async function bootPyodide({ repo, site = null, env = {} }) {
  const pyodide = await loadPyodide({ env: { ...env, HOME: "/home/pyodide", PYTHONDONTWRITEBYTECODE: "1" } });
  pyodide.FS.mkdirTree("/repo");
  pyodide.mountNodeFS("/repo", repo);
  if (site) {
    pyodide.FS.mkdirTree("/site");
    pyodide.mountNodeFS("/site", site);
  }
  pyodide.registerJsModule("_cloudflare_compat_flags", compatFlags);
  pyodide.registerJsModule("_pyodide_entrypoint_helper", entrypointHelper);
  return pyodide;
}
