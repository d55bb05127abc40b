"""The harness itself: real Pyodide, the real workers SDK, the KV fake, fetch to a local server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys

import js
import pytest
from eaves_fakes import ExecutionContext, KvNamespace, Ratelimit
from pyodide.ffi import JsException, jsnull, to_js


class TestRuntime:
    def test_runs_inside_pyodide(self) -> None:
        """The tests really run in Pyodide 0.28.2's CPython 3.13, the one compatibility_date 2026-11-01 selects."""
        assert sys.platform == "emscripten"
        assert sys.version_info[:2] == (3, 13)

    def test_workers_sdk_imports(self) -> None:
        """The real workers-runtime-sdk imports with the runtime-internal modules stubbed."""
        import workers

        assert workers.WorkerEntrypoint.__module__ == "workers.entrypoints"
        assert callable(workers.Response.json)

    def test_compat_flags_are_the_ones_the_compatibility_date_sets(self) -> None:
        """The two flags the SDK reads are on from wrangler.toml's compatibility_date (2026-11-01), as in workerd."""
        import tomllib

        import _cloudflare_compat_flags

        with open("/repo/wrangler.toml", "rb") as file:
            date = tomllib.load(file)["compatibility_date"]
        assert date >= "2026-02-25"  # python_workflows_implicit_dependencies; the commas flag is from 2026-02-17
        assert _cloudflare_compat_flags.python_workflows_implicit_dependencies is True
        assert _cloudflare_compat_flags.python_request_headers_preserve_commas is True

    def test_workers_env_and_patch_env(self) -> None:
        """`workers.env` reads the env the harness installs; `patch_env` overlays it for a block."""
        import workers
        from eaves_fakes import setWorkersEnv

        setWorkersEnv(to_js({"EAVES_ORIGIN_URL": "http://127.0.0.1:1"}, dict_converter=js.Object.fromEntries))
        try:
            assert workers.env.EAVES_ORIGIN_URL == "http://127.0.0.1:1"
            with workers.patch_env(EAVES_ORIGIN_URL="http://127.0.0.1:2"):
                assert workers.env.EAVES_ORIGIN_URL == "http://127.0.0.1:2"
            assert workers.env.EAVES_ORIGIN_URL == "http://127.0.0.1:1"
        finally:
            setWorkersEnv(js.Object.new())

    def test_standard_library_crypto_and_json(self) -> None:
        """hashlib, hmac and json behave as on CPython."""
        expected = "b60090e3052297aeb5a080889ce2fc4bca957e756faeb4df7d31800ca1e771ec"
        assert hmac.new(b"k", b"m", hashlib.sha256).hexdigest() == expected
        assert hashlib.sha256(b"abc").hexdigest().startswith("ba7816bf")
        assert json.loads(json.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}

    async def test_coroutine_tests_run(self) -> None:
        """conftest's asyncio.run drives a real event loop here: two tasks interleave at each await (stack
        switching is on), as the edge's concurrent requests and background refreshes need."""
        order: list[str] = []

        async def worker(name: str) -> None:
            for step in range(2):
                order.append(f"{name}{step}")
                await asyncio.sleep(0)

        await asyncio.gather(worker("a"), worker("b"))
        assert order == ["a0", "b0", "a1", "b1"]


class TestKVFake:
    async def test_round_trip_with_metadata(self) -> None:
        """Bytes and metadata come back as they were put."""
        kv = KvNamespace.new()
        await kv.put("k", to_js(b"\x00\xffhello"), to_js({"metadata": {"v": 1}}, dict_converter=js.Object.fromEntries))
        got = await kv.getWithMetadata("k", "arrayBuffer")
        assert got.value.to_bytes() == b"\x00\xffhello"
        assert got.metadata.to_py() == {"v": 1}
        assert await kv.get("missing") is jsnull  # JS null, as the real binding answers

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            ("", "KV PUT failed: 400 Key names must not be empty"),
            (".", 'KV PUT failed: 400 Illegal key name "."'),
            ("..", 'KV PUT failed: 400 Illegal key name ".."'),
            ("k" * 513, "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."),
            ("é" * 257, "KV PUT failed: 414 UTF-8 encoded length of 514"),
        ],
    )
    async def test_refuses_bad_keys(self, key: str, message: str) -> None:
        """Keys are 1..512 UTF-8 bytes and never '.' or '..'."""
        with pytest.raises(JsException, match=message.replace(".", r"\.")):
            await KvNamespace.new().put(key, "v")

    async def test_accepts_a_512_byte_key(self) -> None:
        """The limit is inclusive."""
        kv = KvNamespace.new()
        await kv.put("k" * 512, "v")
        assert await kv.get("k" * 512) == "v"

    async def test_refuses_values_over_25_mib(self) -> None:
        """Values are at most 25 MiB."""
        kv = KvNamespace.new()
        await kv.put("ok", js.Uint8Array.new(25 * 1024 * 1024))
        with pytest.raises(JsException, match="413 Value length of 26214401 exceeds limit of 26214400"):
            await kv.put("big", js.Uint8Array.new(25 * 1024 * 1024 + 1))

    async def test_refuses_metadata_over_1024_bytes(self) -> None:
        """Metadata is at most 1024 bytes serialized."""
        kv = KvNamespace.new()
        fits = to_js({"metadata": {"m": "x" * 1016}}, dict_converter=js.Object.fromEntries)  # {"m":"…"} = 1024
        await kv.put("k", "v", fits)
        over = to_js({"metadata": {"m": "x" * 1017}}, dict_converter=js.Object.fromEntries)
        with pytest.raises(JsException, match="413 Metadata length of 1025 exceeds limit of 1024"):
            await kv.put("k", "v", over)

    async def test_refuses_short_ttls_and_expires(self) -> None:
        """expirationTtl is at least 60 s, and an entry is gone once it has passed."""
        now = [1_000_000_000_000.0]
        kv = KvNamespace.new(to_js({"now": lambda: now[0]}, dict_converter=js.Object.fromEntries))
        with pytest.raises(JsException, match="400 Invalid expiration_ttl of 59"):
            await kv.put("k", "v", to_js({"expirationTtl": 59}, dict_converter=js.Object.fromEntries))
        await kv.put("k", "v", to_js({"expirationTtl": 60}, dict_converter=js.Object.fromEntries))
        assert await kv.get("k") == "v"
        now[0] += 60_000
        assert await kv.get("k") is jsnull

    async def test_optional_write_rate_limit(self) -> None:
        """With enforceWriteRate, a second write to one key within a second is refused with 429."""
        now = [1_000_000_000_000.0]
        options = {"now": lambda: now[0], "enforceWriteRate": True}
        kv = KvNamespace.new(to_js(options, dict_converter=js.Object.fromEntries))
        await kv.put("k", "1")
        await kv.put("other", "1")
        with pytest.raises(JsException, match="KV PUT failed: 429 Too Many Requests"):
            await kv.put("k", "2")
        now[0] += 1000
        await kv.put("k", "2")
        assert await kv.get("k") == "2"

    async def test_refuses_python_objects_passed_without_to_js(self) -> None:
        """A Python bytes object is not a JS value: the fake refuses it rather than storing its repr."""
        with pytest.raises(JsException, match="TypeError"):
            await KvNamespace.new().put("k", b"raw")

    async def test_lists_in_pages(self) -> None:
        """list() pages through keys in byte order with a cursor."""
        kv = KvNamespace.new()
        for name in ("b", "a", "c", "x"):
            await kv.put(f"p:{name}", "v")
        first = await kv.list(to_js({"prefix": "p:", "limit": 2}, dict_converter=js.Object.fromEntries))
        assert [k.name for k in first.keys] == ["p:a", "p:b"]
        assert first.list_complete is False
        rest = await kv.list(to_js({"prefix": "p:", "cursor": first.cursor}, dict_converter=js.Object.fromEntries))
        assert [k.name for k in rest.keys] == ["p:c", "p:x"]
        assert rest.list_complete is True


class TestOtherFakes:
    async def test_rate_limit_binding(self) -> None:
        """The rate-limit fake allows `limit` calls per key and period."""
        limiter = Ratelimit.new(to_js({"limit": 2, "period": 10}, dict_converter=js.Object.fromEntries))
        key = to_js({"key": "t"}, dict_converter=js.Object.fromEntries)
        results = [(await limiter.limit(key)).success for _ in range(3)]
        assert results == [True, True, False]

    async def test_wait_until_takes_python_awaitables(self) -> None:
        """With the SDK's patchWaitUntil, ctx.waitUntil runs a Python task to completion."""
        from _pyodide_entrypoint_helper import patchWaitUntil

        ctx = ExecutionContext.new()
        patchWaitUntil(ctx)
        done: list[int] = []

        async def work() -> None:
            await asyncio.sleep(0.001)
            done.append(1)

        ctx.waitUntil(asyncio.ensure_future(work()))
        assert await ctx.drain() == 1
        assert done == [1]


class TestFetch:
    @pytest.fixture
    def server(self) -> str:
        url = os.environ.get("EAVES_TEST_SERVER")
        if not url:
            pytest.skip("EAVES_TEST_SERVER is not set (the CPython side starts the server and sets it)")
        return url

    async def test_js_fetch_reaches_local_server(self, server: str) -> None:
        """js.fetch reaches a real HTTP server on 127.0.0.1."""
        response = await js.fetch(f"{server}/echo?via=js")
        assert response.status == 200
        assert json.loads(await response.text())["path"] == "/echo?via=js"

    async def test_pyfetch_reaches_local_server(self, server: str) -> None:
        """pyodide.http.pyfetch reaches it too."""
        from pyodide.http import pyfetch

        response = await pyfetch(f"{server}/echo?via=pyfetch", method="POST", body="hi")
        assert response.status == 200
        assert (await response.json())["body"] == "hi"
