// A Workers KV namespace binding backed by the local KV sidecar (edge/emulator/kv_sidecar.py), which
// serves the LMDB file the origin writes answers into. Same shape as the binding the edge's adapter
// (edge/workers/kv.py) calls: getWithMetadata / get / put / delete / list, promises throughout, and
// refusals worded as the binding words them (`KV PUT failed: 413 ...`), so the adapter maps them as in
// production. Limits are enforced by the sidecar (shared/kv.py's rules).

async function failure(method, response) {
  const text = await response.text();
  return new Error(text.startsWith("KV ") ? text : `KV ${method} failed: ${response.status} ${text}`);
}

function decodeMetadata(raw) {
  return raw ? JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) : null;
}

async function decode(response, type) {
  switch (type) {
    case "arrayBuffer":
      return response.arrayBuffer();
    case "json":
      return response.json();
    case "stream":
      return response.body;
    default:
      return response.text();
  }
}

export class KvNamespace {
  #base;

  constructor(base) {
    this.#base = String(base).replace(/\/+$/, "");
  }

  get [Symbol.toStringTag]() {
    return "KvNamespace";
  }

  #url(path, params) {
    return `${this.#base}${path}?${new URLSearchParams(params)}`;
  }

  async getWithMetadata(key, options) {
    const type = typeof options === "string" ? options : (options?.type ?? "text");
    const response = await fetch(this.#url("/kv/value", { key }));
    if (response.status === 404) {
      await response.arrayBuffer();
      return { value: null, metadata: null };
    }
    if (!response.ok) throw await failure("GET", response);
    const metadata = decodeMetadata(response.headers.get("x-kv-metadata"));
    return { value: await decode(response, type), metadata };
  }

  async get(key, options) {
    return (await this.getWithMetadata(key, options)).value;
  }

  async put(key, value, options = {}) {
    const params = { key };
    if (options.expirationTtl !== undefined) params.ttl = String(options.expirationTtl);
    const headers = {};
    if (options.metadata !== undefined && options.metadata !== null) {
      headers["x-kv-metadata"] = Buffer.from(JSON.stringify(options.metadata)).toString("base64url");
    }
    const body = typeof value === "string" ? value : new Uint8Array(ArrayBuffer.isView(value) ? value.buffer.slice(
      value.byteOffset, value.byteOffset + value.byteLength) : value);
    const response = await fetch(this.#url("/kv/value", params), { method: "PUT", headers, body });
    if (!response.ok) throw await failure("PUT", response);
    await response.arrayBuffer();
  }

  async delete(key) {
    const response = await fetch(this.#url("/kv/value", { key }), { method: "DELETE" });
    if (!response.ok) throw await failure("DELETE", response);
    await response.arrayBuffer();
  }

  async list(options = {}) {
    const params = { prefix: options.prefix ?? "", limit: String(options.limit ?? 1000) };
    if (options.cursor) params.cursor = options.cursor;
    const response = await fetch(this.#url("/kv/list", params));
    if (!response.ok) throw await failure("LIST", response);
    return response.json();
  }
}
