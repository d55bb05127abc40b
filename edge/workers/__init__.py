"""Adapters from the edge's ports to the Cloudflare Workers runtime (Pyodide).

Only this package and ``edge/entry.py`` import ``js``, ``pyodide`` or ``workers``; the core stays
platform-neutral. Each adapter converts at the boundary: JS values in, Python values out, and JS
errors translated into the project's own (``shared.kv.KVError``, ``edge.errors.UpstreamError``).

    kv          KVStore over a Workers KV namespace binding
    origin      OriginClient over the Fetch API, bodies streamed through
    ratelimit   RateLimiter over the rate-limiting binding
    clock       Clock (Workers' clocks only advance across I/O)
    background  Background over ctx.waitUntil
"""
