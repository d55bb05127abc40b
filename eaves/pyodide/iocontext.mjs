// Workers' rule that an I/O object belongs to the request that created it, enforced in the local runtime.
//
// workerd keeps one IoContext per request; streams, request and response bodies and other I/O objects
// created while it is current belong to it, and touching one while another request's context is current
// throws (src/workerd/io/io-context.c++, throwNotCurrentJsError) the error below. Node has the same notion
// of "the current request" in AsyncLocalStorage: it follows setTimeout, setImmediate and promise
// continuations exactly as workerd's context follows them, which matters because Pyodide's event loop
// schedules every Python task step with a timer (pyodide.webloop). So a Python coroutine woken by another
// request's future runs on in that request's context here, as there.
//
// What is tagged with its creating request: every Response and Request constructed, every ReadableStream
// constructed (and its controller), fetch()'s Response and its body, and the readers taken from a tagged
// stream. What is checked: reading a body, taking or using a reader, enqueuing into a tagged stream's
// controller. Objects made outside any request (module scope, test set-up) are not tagged, as in workerd
// (they belong to no request; workerd refuses most I/O there, which this runtime does not model).
//
//   installIoContexts()        patch the globals once (idempotent); serve.mjs and the test harness call it
//   runInRequest(fn)           run fn as one incoming request, with a fresh context
//   serveRequest(handle, request, env)   one request the way the runtime serves it: handle(request, env,
//                              ctx) in a fresh context, the Response's body read by the runtime (in that
//                              request's context), waitUntil work drained; {status, headers, text}
import { AsyncLocalStorage } from "node:async_hooks";

import { ExecutionContext } from "./bindings.mjs";

export const CROSS_REQUEST_MESSAGE =
  "Cannot perform I/O on behalf of a different request. I/O objects (such as streams, request/response " +
  "bodies, and others) created in the context of one request handler cannot be accessed from a different " +
  "request's handler. This is a limitation of Cloudflare Workers which allows us to improve overall performance.";

const current = new AsyncLocalStorage();
const owners = new WeakMap(); // I/O object -> id of the request that created it
let nextRequest = 1;
let installed = false;

export function currentRequest() {
  return current.getStore();
}

export function runInRequest(fn) {
  return current.run(nextRequest++, fn);
}

function tag(object, owner = current.getStore()) {
  if (owner !== undefined && object !== null && typeof object === "object") owners.set(object, owner);
  return object;
}

function check(object, type) {
  const owner = owners.get(object);
  const now = current.getStore();
  // No request current: the runtime itself at work (undici cancelling an unread body from a GC finalizer),
  // not another request's handler; throwing there would crash the process, not model workerd.
  if (owner !== undefined && now !== undefined && owner !== now) {
    throw new Error(`${CROSS_REQUEST_MESSAGE} (I/O type: ${type})`);
  }
}

function guard(prototype, names, type) {
  for (const name of names) {
    const original = prototype[name];
    if (typeof original !== "function") continue;
    Object.defineProperty(prototype, name, {
      configurable: true,
      writable: true,
      value: function (...args) {
        check(this, type);
        return original.apply(this, args);
      },
    });
  }
}

function guardGetter(prototype, name, type, after = (value) => value) {
  const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
  Object.defineProperty(prototype, name, {
    configurable: true,
    get() {
      check(this, type);
      return after(descriptor.get.call(this), this);
    },
  });
}

export function installIoContexts() {
  if (installed) return;
  installed = true;
  const OriginalStream = globalThis.ReadableStream;
  const OriginalResponse = globalThis.Response;
  const OriginalRequest = globalThis.Request;
  const originalFetch = globalThis.fetch;

  // Constructed streams and their controllers belong to the creating request. The subclasses keep the
  // built-in names, so `constructor.name` (which the workers SDK inspects) is unchanged.
  globalThis.ReadableStream = class ReadableStream extends OriginalStream {
    constructor(source = {}, strategy) {
      const owner = current.getStore();
      const own = (method) =>
        typeof method === "function" ? (controller, ...rest) => method.call(source, tag(controller, owner), ...rest) : method;
      super({ ...source, start: own(source.start), pull: own(source.pull), cancel: source.cancel?.bind(source),
              type: source.type }, strategy);
      tag(this, owner);
    }
  };
  globalThis.Response = class Response extends OriginalResponse {
    constructor(body, init) {
      super(body, init);
      tag(this);
    }
  };
  globalThis.Request = class Request extends OriginalRequest {
    constructor(input, init) {
      super(input, init);
      tag(this);
    }
  };
  // fetch's response and its body belong to the request that called fetch, even when they are read later.
  globalThis.fetch = function fetch(...args) {
    const owner = current.getStore();
    return originalFetch(...args).then((response) => tag(response, owner));
  };

  for (const Body of [OriginalResponse, OriginalRequest]) {
    const type = Body.name;
    guard(Body.prototype, ["arrayBuffer", "text", "json", "blob", "formData", "bytes", "clone"], type);
    guardGetter(Body.prototype, "body", type, (stream, holder) => {
      if (stream && !owners.has(stream) && owners.has(holder)) owners.set(stream, owners.get(holder));
      return stream;
    });
  }
  const getReader = OriginalStream.prototype.getReader;
  Object.defineProperty(OriginalStream.prototype, "getReader", {
    configurable: true,
    writable: true,
    value: function (...args) {
      check(this, "ReadableStream");
      const reader = getReader.apply(this, args);
      if (owners.has(this)) owners.set(reader, owners.get(this));
      return reader;
    },
  });
  guard(OriginalStream.prototype, ["cancel", "tee", "pipeTo", "pipeThrough"], "ReadableStream");
  const reader = new OriginalStream().getReader();
  guard(Object.getPrototypeOf(reader), ["read", "cancel", "releaseLock"], "ReadableStreamDefaultReader");
  let controllerPrototype;
  new OriginalStream({ start(controller) { controllerPrototype = Object.getPrototypeOf(controller); } });
  guard(controllerPrototype, ["enqueue", "close", "error"], "ReadableStreamDefaultController");
}

export async function serveRequest(handle, request, env) {
  return runInRequest(async () => {
    const ctx = new ExecutionContext();
    const response = await handle(request, env, ctx);
    const text = await response.text();
    await ctx.drain();
    return { status: response.status, headers: Object.fromEntries(response.headers), text };
  });
}
