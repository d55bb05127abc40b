// Stand-ins for the other Workers bindings the edge uses, for the Pyodide test tier.
// Python reaches them as `from eaves_fakes import KvNamespace, Ratelimit, ExecutionContext`
// (registered by harness.mjs); build one with `.new(...)`.

export { KvNamespace } from "./kv.mjs";

// The rate-limiting binding (`[[ratelimits]]` in wrangler.toml): `await env.X.limit({key})` answers
// `{success}`. Cloudflare allows periods of 10 or 60 seconds only and counts per location; this fake
// counts in fixed windows per key, which is what one location does.
export class Ratelimit {
  #limit;
  #period;
  #now;
  #windows = new Map(); // key -> {start: ms, count}

  constructor({ limit, period, now = () => Date.now() }) {
    if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`limit must be a positive integer, not ${limit}`);
    if (period !== 10 && period !== 60) throw new TypeError(`period must be 10 or 60 seconds, not ${period}`);
    this.#limit = limit;
    this.#period = period;
    this.#now = now;
  }

  get [Symbol.toStringTag]() {
    return "Ratelimit";
  }

  async limit(options) {
    const key = options?.key;
    if (typeof key !== "string" || key === "") throw new TypeError("limit(): options.key must be a non-empty string");
    const now = this.#now();
    let window = this.#windows.get(key);
    if (window === undefined || now - window.start >= this.#period * 1000) {
      window = { start: now, count: 0 };
      this.#windows.set(key, window);
    }
    if (window.count >= this.#limit) return { success: false };
    window.count += 1;
    return { success: true };
  }
}

// The `ctx` a Worker handler receives. Its toStringTag is "ExecutionContext", as workerd's, so the SDK's
// patchWaitUntil recognises it. `drain()` (test-only) waits for everything handed to waitUntil.
export class ExecutionContext {
  pending = [];

  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }

  waitUntil(promise) {
    this.pending.push(Promise.resolve(promise));
  }

  passThroughOnException() {}

  async drain() {
    const results = [];
    while (this.pending.length > 0) {
      results.push(...(await Promise.allSettled(this.pending.splice(0))));
    }
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length > 0) throw failed[0].reason;
    return results.length;
  }
}
