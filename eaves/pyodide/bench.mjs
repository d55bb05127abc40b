// The edge core's per-request cost inside Pyodide: runs eaves.bench.runtimes.measure there and prints its
// result as one JSON line. Called by `python -m eaves.bench.runtimes`, which measures CPython in the
// same run and prints both.   node eaves/pyodide/bench.mjs [iterations]
import path from "node:path";
import { fileURLToPath } from "node:url";

import { bootPyodide } from "./boot.mjs";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const iterations = Number(process.argv[2] || 5000);
const pyodide = await bootPyodide({ repo });
pyodide.globals.set("iterations", iterations);
const result = await pyodide.runPythonAsync(`
import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "/repo")
from eaves.bench.runtimes import measure
json.dumps(await measure(int(iterations)))
`);
console.log(result);
