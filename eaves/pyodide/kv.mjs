// An in-memory stand-in for a Workers KV namespace binding, for the Pyodide test tier.
//
// Same shape as the binding (get / getWithMetadata / put / delete / list, promises throughout) and the
// same refusals, so code that passes here does not fail on its first deploy. Limits and messages follow
// Cloudflare's KV documentation ("Limits") and the wording Miniflare/workerd use: the error a Worker
// sees is `KV <METHOD> failed: <status> <reason>`.
//   key       1..512 UTF-8 bytes, not "." or ".."          400 / 414
//   value     at most 25 MiB                                 413
//   metadata  at most 1024 bytes of serialized JSON          413
//   expirationTtl at least 60 s; expiration at least 60 s ahead; cacheTtl at least 30 s   400
//   list      limit 1..1000, keys in UTF-8 byte order, opaque cursor
//   writes    at most 1 per second per key, when built with {enforceWriteRate: true}    429
//             (off by default: production does not always refuse, but code must not rely on it)
// Stricter than production on purpose, where production would silently do the wrong thing: a value or
// metadata that is not a JS string/buffer/plain object (e.g. a Python object passed without `to_js`)
// is refused with a TypeError instead of being stringified.

export const MAX_KEY_BYTES = 512;
export const MAX_VALUE_BYTES = 25 * 1024 * 1024;
export const MAX_METADATA_BYTES = 1024;
export const MIN_EXPIRATION_TTL = 60;
export const MIN_CACHE_TTL = 30;
export const MAX_LIST_LIMIT = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function kvError(method, status, reason) {
  const error = new Error(`KV ${method} failed: ${status} ${reason}`);
  error.status = status;
  return error;
}

function checkKey(method, key) {
  if (typeof key !== "string") {
    throw new TypeError(`KV ${method.toLowerCase()}(): the key must be a string, not ${typeof key}.`);
  }
  if (key === "") throw kvError(method, 400, "Key names must not be empty");
  if (key === "." || key === "..") {
    throw kvError(method, 400, `Illegal key name "${key}". Please use a different name.`);
  }
  const length = encoder.encode(key).byteLength;
  if (length > MAX_KEY_BYTES) {
    throw kvError(method, 414, `UTF-8 encoded length of ${length} exceeds key length limit of ${MAX_KEY_BYTES}.`);
  }
}

function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || Array.isArray(value);
}

async function toBytes(value) {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  }
  if (value instanceof ReadableStream) {
    return new Uint8Array(await new Response(value).arrayBuffer());
  }
  throw new TypeError(
    "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.",
  );
}

function readOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options === "string") return { type: options };
  return options;
}

export class KvNamespace {
  #entries = new Map(); // key -> {value: Uint8Array, expiration?: seconds, metadata?: JSON string}
  #now;
  #enforceWriteRate;
  #lastWrite = new Map(); // key -> ms of the last accepted write

  // `now` returns milliseconds since the epoch; tests pass a fake to move time forward.
  constructor({ now = () => Date.now(), enforceWriteRate = false } = {}) {
    this.#now = now;
    this.#enforceWriteRate = enforceWriteRate;
  }

  get [Symbol.toStringTag]() {
    return "KvNamespace";
  }

  #live(key) {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiration !== undefined && entry.expiration * 1000 <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #decode(bytes, type) {
    switch (type ?? "text") {
      case "text":
        return decoder.decode(bytes);
      case "json":
        return JSON.parse(decoder.decode(bytes));
      case "arrayBuffer":
        return bytes.slice().buffer;
      case "stream":
        return new Response(bytes.slice()).body;
      default:
        throw new TypeError(`Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".`);
    }
  }

  #read(method, key, options) {
    checkKey(method, key);
    const { type, cacheTtl } = readOptions(options);
    if (cacheTtl !== undefined && !(cacheTtl >= MIN_CACHE_TTL)) {
      throw kvError(method, 400, `Invalid cache_ttl of ${cacheTtl}. Cache TTL must be at least ${MIN_CACHE_TTL}.`);
    }
    const entry = this.#live(key);
    if (entry === undefined) return { value: null, metadata: null };
    const metadata = entry.metadata === undefined ? null : JSON.parse(entry.metadata);
    return { value: this.#decode(entry.value, type), metadata };
  }

  async get(key, options) {
    return this.#read("GET", key, options).value;
  }

  async getWithMetadata(key, options) {
    return { ...this.#read("GET", key, options), cacheStatus: null };
  }

  async put(key, value, options = {}) {
    checkKey("PUT", key);
    const bytes = await toBytes(value);
    if (bytes.byteLength > MAX_VALUE_BYTES) {
      throw kvError("PUT", 413, `Value length of ${bytes.byteLength} exceeds limit of ${MAX_VALUE_BYTES}.`);
    }
    const { expiration, expirationTtl, metadata } = options ?? {};
    const nowSeconds = Math.floor(this.#now() / 1000);
    let expiresAt;
    if (expirationTtl !== undefined && expirationTtl !== null) {
      const ttl = Math.round(Number(expirationTtl));
      if (!Number.isFinite(ttl) || ttl < MIN_EXPIRATION_TTL) {
        throw kvError("PUT", 400,
          `Invalid expiration_ttl of ${expirationTtl}. Expiration TTL must be at least ${MIN_EXPIRATION_TTL}.`);
      }
      expiresAt = nowSeconds + ttl;
    } else if (expiration !== undefined && expiration !== null) {
      const at = Math.round(Number(expiration));
      if (!Number.isFinite(at) || at < nowSeconds + MIN_EXPIRATION_TTL) {
        throw kvError("PUT", 400,
          `Invalid expiration of ${expiration}. Expiration times must be at least ${MIN_EXPIRATION_TTL} seconds in the future.`);
      }
      expiresAt = at;
    }
    let serialized;
    if (metadata !== undefined && metadata !== null) {
      if (!isPlainObject(metadata)) {
        throw new TypeError("KV put(): metadata must be a plain JSON object (convert Python dicts with to_js).");
      }
      serialized = JSON.stringify(metadata);
      const length = encoder.encode(serialized).byteLength;
      if (length > MAX_METADATA_BYTES) {
        throw kvError("PUT", 413, `Metadata length of ${length} exceeds limit of ${MAX_METADATA_BYTES}.`);
      }
    }
    if (this.#enforceWriteRate) {
      const last = this.#lastWrite.get(key);
      if (last !== undefined && this.#now() - last < 1000) {
        throw kvError("PUT", 429, "Too Many Requests");
      }
      this.#lastWrite.set(key, this.#now());
    }
    this.#entries.set(key, { value: bytes, expiration: expiresAt, metadata: serialized });
  }

  async delete(key) {
    checkKey("DELETE", key);
    this.#entries.delete(key);
  }

  async list({ prefix = "", limit = MAX_LIST_LIMIT, cursor } = {}) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw kvError("GET", 400, `Invalid key_count_limit of ${limit}. Please specify an integer greater than 0.`);
    }
    if (limit > MAX_LIST_LIMIT) {
      throw kvError("GET", 400,
        `Invalid key_count_limit of ${limit}. Please specify an integer less than ${MAX_LIST_LIMIT}.`);
    }
    prefix ??= "";
    const after = cursor ? Buffer.from(cursor, "base64url").toString("utf8") : null;
    // KV lists keys in lexicographic order of their UTF-8 bytes.
    const names = [...this.#entries.keys()]
      .filter((name) => name.startsWith(prefix) && this.#live(name) !== undefined)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .filter((name) => after === null || Buffer.compare(Buffer.from(name), Buffer.from(after)) > 0);
    const page = names.slice(0, limit);
    const keys = page.map((name) => {
      const entry = this.#entries.get(name);
      const key = { name };
      if (entry.expiration !== undefined) key.expiration = entry.expiration;
      if (entry.metadata !== undefined) key.metadata = JSON.parse(entry.metadata);
      return key;
    });
    if (names.length > limit) {
      return { keys, list_complete: false, cursor: Buffer.from(page.at(-1)).toString("base64url"), cacheStatus: null };
    }
    return { keys, list_complete: true, cacheStatus: null };
  }
}
