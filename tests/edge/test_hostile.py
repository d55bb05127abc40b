"""Hostile and careless input at the edge core: every refusal is a JSON 4xx with a request id, sent
before anything is stored, and nothing a caller sends can crash the edge or hurt another tenant.

Standard library only (no httpx, no hypothesis): this file also runs inside Pyodide.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge import errors
from edge.app import EdgeApp
from edge.auth import KEY_PREFIX, Authenticator, api_key_hash, api_key_record
from edge.breaker import CircuitBreaker
from edge.http import EdgeRequest, EdgeResponse, json_bytes
from edge.jwt import JwtConfig, JwtError, JwtKey, segment_decode, verify_jwt
from edge.memory import CallbackOrigin, ManualClock, MemoryKV, MemoryRateLimiter, TaskBackground
from edge.parsing import RequestParser, check_locale, is_json_media_type
from edge.ports import OriginRequest, OriginResponse
from edge.ratelimit import rate_limit_key
from edge.settings import EdgeSettings, Tier
from shared import signing, wire
from tests.tokens import b64url, mint

SECRET = b"edge-test-secret-0123456789abcdef"
JWT_SECRET = "jwt-test-secret-0123456789abcdef0123"


async def _answer(request: OriginRequest) -> OriginResponse:
    return OriginResponse(200, {"content-type": "application/json"},
                          json_bytes(wire.completion_body("an answer", model="m")))


class Rig:
    def __init__(self, **settings: Any) -> None:
        self.clock = ManualClock()
        self.kv = MemoryKV(self.clock)
        self.origin = CallbackOrigin(_answer)
        settings.setdefault("jwt", JwtConfig(keys=[JwtKey("HS256", kid="main", secret=JWT_SECRET.encode())]))
        self.edge = EdgeApp(EdgeSettings(origin_secret=SECRET, **settings), self.kv, self.origin,
                            MemoryRateLimiter(self.clock), self.clock, TaskBackground())

    async def key(self, tenant: str, tier: str = "pro", name: str = "k") -> str:
        key = f"eav_{name}_{api_key_hash(tenant + tier + name)[:20]}"
        await self.kv.put(KEY_PREFIX + api_key_hash(key), api_key_record(tenant, tier, name, self.clock.now()))
        return key

    async def send(self, key: str | None, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
                   method: str = "POST", path: str = "/v1/chat/completions", prompt: str = "hello") -> EdgeResponse:
        sent = {"content-type": "application/json"}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        sent.update(headers or {})
        body = raw if raw is not None else json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode()
        return await self.edge.handle(EdgeRequest(method, path, sent, body))

    def jwt(self, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None) -> str:
        full = {"tenant": "acme", "tier": "pro", "exp": self.clock.now() + 600, **(claims or {})}
        return mint(full, secret=JWT_SECRET, header=header)


def refusal(response: EdgeResponse, status: int) -> dict[str, Any]:
    """Checks the response is a sendable JSON error of ``status`` with a request id; returns its error."""
    assert response.status == status, response.body
    for name, value in response.headers:  # every header can go on the wire (Latin-1)
        name.encode("latin-1")
        value.encode("latin-1")
    assert wire.clean_request_id(response.header("x-request-id"))
    assert isinstance(response.body, bytes)
    error: dict[str, Any] = json.loads(response.body)["error"]
    assert error["message"] and error["type"] and error["code"]
    return error


# ------------------------------------------------------------------ clean 4xx JSON, never a crash


class TestCleanErrors:
    async def test_jwt_header_with_non_latin1_kid_or_alg_is_a_401(self) -> None:
        """A kid or alg no header can carry gives a 401 whose WWW-Authenticate is still sendable."""
        rig = Rig()
        for header in ({"kid": "ключ-€"}, {"alg": "HS256\u2028"}, {"kid": "k" * 5000}):
            error = refusal(await rig.send(rig.jwt(header=header)), 401)
            assert error["code"] == "invalid_token"
            assert len(error["message"]) < 200  # untrusted text is quoted, bounded

    async def test_signed_token_with_non_ascii_tier_is_a_401(self) -> None:
        """A correctly signed token naming a tier 'prämie' is refused cleanly, not with a 500."""
        rig = Rig()
        error = refusal(await rig.send(rig.jwt({"tier": "prämie☃"})), 401)
        assert "tier" in error["message"]

    @pytest.mark.parametrize(("raw", "words"), [
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "levels deep"),
        (b'{"messages": [{"role": "user", "content": "x"}], "seed": ' + b"9" * 5000 + b"}", "integer too long"),
        (b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}', "surrogate"),
        (b'{"messages": [{"role": "user", "content": "a\xed\xa0\x80b"}]}', "UTF-8"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "NaN"),
    ])
    async def test_bodies_json_loads_chokes_on_are_a_400(self, raw: bytes, words: str) -> None:
        """Deep nesting, huge integers, lone surrogates (escaped or raw) and NaN: 400, nothing stored."""
        rig = Rig(max_body_bytes=1 << 20)
        error = refusal(await rig.send(await rig.key("acme"), raw=raw), 400)
        assert words in error["message"]
        assert not (await rig.kv.list(prefix="ans/")).keys and not rig.origin.requests

    @pytest.mark.parametrize(("raw", "words"), [
        (b'{"input": "x", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "levels deep"),
        (b'{"input": "x", "max_output_tokens": ' + b"9" * 5000 + b"}", "integer too long"),
        (b'{"input": "a\\ud800b"}', "surrogate"),
        (b'{"input": "a\xed\xa0\x80b"}', "UTF-8"),
        (b'{"input": "x", "temperature": NaN}', "NaN"),
    ])
    async def test_the_responses_api_refuses_them_the_same_way(self, raw: bytes, words: str) -> None:
        """/v1/responses reads its body with the same guarded parser: a 400, never a 500 (or, in Pyodide, a
        fatal stack overflow), nothing stored, nothing forwarded."""
        rig = Rig(max_body_bytes=1 << 20)
        error = refusal(await rig.send(await rig.key("acme"), raw=raw, path="/v1/responses"), 400)
        assert words in error["message"]
        assert not (await rig.kv.list(prefix="ans/")).keys and not rig.origin.requests

    async def test_a_surrogate_pair_is_valid_unicode_and_goes_through(self) -> None:
        """The escape check refuses only lone surrogates: an escaped emoji is fine."""
        rig = Rig()
        raw = b'{"messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}]}'
        assert (await rig.send(await rig.key("acme"), raw=raw)).status == 200

    async def test_unusable_request_ids_are_replaced_before_echo_and_forwarding(self) -> None:
        """A non-ASCII, overlong or spaced x-request-id is replaced by a generated one everywhere."""
        rig = Rig()
        key = await rig.key("acme")
        for given in ("idé", "x" * 500, "a b", "a\r\nset-cookie: x=1"):
            response = await rig.send(key, headers={"x-request-id": given}, prompt=f"q {given!r}")
            assert response.status == 200
            echoed = response.header("x-request-id")
            assert echoed != given and wire.clean_request_id(echoed)
            assert rig.origin.requests[-1].headers["x-request-id"] == echoed
        kept = await rig.send(key, headers={"x-request-id": "req-42.a:b"}, prompt="kept")
        assert kept.header("x-request-id") == "req-42.a:b"

    @pytest.mark.parametrize("tenant", ["ténant-ü", "t" * 600, "acme ", "a\x00b"])
    async def test_odd_tenants_never_crash_the_limiter_or_the_edge(self, tenant: str) -> None:
        """A non-ASCII, 600-character, space-ended or NUL tenant: a clean answer, bounded counter names."""
        rig = Rig()
        response = await rig.send(await rig.key(tenant))
        # Such a tenant id is refused where the key is read (403 invalid_tenant: see shared.cache_keys);
        # whatever refuses it, the answer is clean JSON and the limiter's name stays bounded.
        assert response.status in (200, 400, 403)
        if response.status != 200:
            assert refusal(response, response.status)["code"] in ("unforwardable_request", "invalid_tenant")
        name = rate_limit_key(tenant, "chat")
        assert name.isascii() and len(name) < 64


# ------------------------------------------------------------------ one tenant cannot hurt the others


class TestBreakerCountsOnlyTheOrigin:
    async def test_requests_that_cannot_be_built_never_open_the_breaker(self) -> None:
        """Ten misses of a tenant 'acme ' (no header can carry it; refused as an invalid tenant id before
        any origin request is built) leave the breaker closed for everyone."""
        rig = Rig(breaker_failures=3)
        bad, good = await rig.key("acme "), await rig.key("beta")
        for i in range(10):
            response = await rig.send(bad, prompt=f"q{i}")
            assert refusal(response, response.status)["code"] in ("unforwardable_request", "invalid_tenant")
        assert rig.edge.breaker.state == "closed" and not rig.origin.requests
        assert (await rig.send(good)).status == 200

    def test_a_probe_that_never_reached_the_origin_frees_its_slot(self) -> None:
        """Half-open: a probe refused before sending does not block the next probe for a minute."""
        clock = ManualClock()
        breaker = CircuitBreaker(clock.monotonic, failure_threshold=1, cooldown_s=1)
        breaker.record_failure()
        clock.advance(2)
        assert breaker.allow()
        breaker.record_neither()
        assert breaker.allow() and breaker.state == "half_open"

    def test_sign_refuses_values_http_cannot_carry_unchanged(self) -> None:
        """Trailing spaces, non-ASCII and control characters are refused when signing, with the reason."""
        for value in ("acme ", " acme", "ténant", "a\nb", "x" * 5000):
            with pytest.raises(signing.SigningError):
                signing.sign(SECRET, "POST", "/p", b"", 0, {"x-eaves-tenant": value})
        signing.sign(SECRET, "POST", "/p", b"", 0, {"x-eaves-tenant": "two words", "x-eaves-intent": ""})


# ------------------------------------------------------------------ protocol points


class TestProtocol:
    async def test_two_credentials_are_refused_not_last_wins(self) -> None:
        """Repeated Authorization (joined by ', ' as Fetch does) or a differing X-API-Key: 400."""
        rig = Rig()
        a, b = await rig.key("acme"), await rig.key("beta")
        assert refusal(await rig.send(None, headers={"authorization": f"Bearer {a}, Bearer {b}"}),
                       400)["code"] == "conflicting_credentials"
        assert refusal(await rig.send(a, headers={"x-api-key": b}), 400)["code"] == "conflicting_credentials"
        assert (await rig.send(a, headers={"x-api-key": a})).status == 200  # the same credential twice is fine

    async def test_jwt_segments_must_be_canonical_unpadded_base64url(self) -> None:
        """Padding, the standard alphabet or other trailing bits make another spelling: refused."""
        rig = Rig()
        token = next(t for i in range(200) if any(c in (t := rig.jwt({"n": i})).rsplit(".", 1)[1] for c in "-_"))
        head, payload, signature = token.split(".")
        assert (await rig.send(token)).status == 200
        standard = signature.replace("-", "+").replace("_", "/")
        for forged in (f"{token}==", f"{token}=", f"{head}.{payload}.{standard}", f"{head}=.{payload}.{signature}"):
            assert refusal(await rig.send(forged), 401)["code"] == "invalid_token"

    def test_segment_decode_accepts_only_the_canonical_spelling(self) -> None:
        """b64url round trips; a changed last character with the same bytes is refused."""
        assert segment_decode(b64url(b"\xfb\xff")) == b"\xfb\xff"
        for bad in ("+_8", "-/8", "AB==", "ABC=", "A", "AB", "ABD"):  # AB / ABD: non-zero trailing bits
            with pytest.raises(ValueError):
                segment_decode(bad)

    @pytest.mark.parametrize(("content_type", "ok"), [
        ("application/json", True), ("Application/JSON; charset=UTF-8", True), ("application/json;v=1", True),
        ("application/jsonx", False), ("application/json-patch+json", False), ("text/plain", False),
        ("application/json; charset=latin-1", False), ("", False),
    ])
    def test_content_type_is_a_media_type_not_a_prefix(self, content_type: str, ok: bool) -> None:
        """application/json with optional parameters; anything merely starting with it is refused."""
        assert is_json_media_type(content_type) is ok

    async def test_405_names_the_allowed_method(self) -> None:
        """A wrong method gets 405 with Allow."""
        rig = Rig()
        response = await rig.send(await rig.key("acme"), method="GET")
        refusal(response, 405)
        assert response.header("allow") == "POST"
        response = await rig.send(await rig.key("acme"), method="DELETE", path="/v1/jobs/job_" + "0" * 32)
        assert refusal(response, 405) and response.header("allow") == "GET"

    @pytest.mark.parametrize(("method", "path", "allowed"), [
        ("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/responses", "POST"),
        ("POST", "/v1/models", "GET"), ("DELETE", "/v1/models/eaves-default", "GET"),
        ("POST", "/v1/jobs/job_" + "0" * 32, "GET"),
    ])
    async def test_every_route_names_its_method(self, method: str, path: str, allowed: str) -> None:
        """Each route's 405 carries Allow, whichever API it belongs to."""
        rig = Rig()
        response = await rig.send(await rig.key("acme"), method=method, path=path)
        assert refusal(response, 405) and response.header("allow") == allowed

    @pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
    async def test_refusals_of_either_api_say_nothing_was_kept(self, path: str) -> None:
        """An error from either chat pipeline says scope none and no-store, so no client or proxy keeps it."""
        rig = Rig()
        response = await rig.send(await rig.key("acme"), raw=b"{not json", path=path)
        assert refusal(response, 400)
        assert response.header("x-edge-scope") == "none" and response.header("cache-control") == "no-store"

    async def test_unauthenticated_callers_learn_nothing_about_limits(self) -> None:
        """Without valid credentials an oversized or mistyped body is a 401, never a 413 or 415."""
        rig = Rig(max_body_bytes=100)
        for headers, raw in (({}, b"x" * 1000), ({"content-type": "text/plain"}, b"{}")):
            assert refusal(await rig.send("eav_nobody", raw=raw, headers=headers), 401)["code"] == "invalid_api_key"
        key = await rig.key("acme")
        assert refusal(await rig.send(key, raw=b"x" * 1000), 413)["message"].count("100") == 1

    async def test_keys_of_several_tiers_share_one_budget(self) -> None:
        """A tenant holding a free and a pro key gets one budget, not the sum of both."""
        rig = Rig(tiers={"free": Tier(2, 60), "pro": Tier(3, 60)})
        free, pro = await rig.key("acme", "free", "f"), await rig.key("acme", "pro", "p")
        statuses = [(await rig.send(k, prompt=f"q{i}")).status for i, k in enumerate([free, pro, free, pro, pro])]
        assert statuses == [200, 200, 429, 200, 429]

    async def test_job_polls_are_rate_limited(self) -> None:
        """Polling a job counts against a per-tenant budget too."""
        rig = Rig(tiers={"pro": Tier(2, 60)})
        key = await rig.key("acme")
        path = "/v1/jobs/job_" + "0" * 32
        statuses = [(await rig.send(key, method="GET", path=path)).status for _ in range(3)]
        assert statuses == [404, 404, 429]


# ------------------------------------------------------------------ resource bounds


class TestBounds:
    @pytest.mark.parametrize("locale", ["x" * 36, "en GB", "en_GB", "ẽn", "en-" + "a" * 4000, "-en", "en--GB"])
    async def test_locale_must_be_a_short_bcp47_tag(self, locale: str) -> None:
        """x-eaves-locale: a BCP 47 tag of at most 35 characters, else 400 naming the header."""
        rig = Rig()
        error = refusal(await rig.send(await rig.key("acme"), headers={"x-eaves-locale": locale}), 400)
        assert error["param"] == "x-eaves-locale"

    def test_valid_locales_pass(self) -> None:
        """Common tags, scripts, regions, variants, extensions and private use are accepted."""
        for tag in ("en", "en-GB", "zh-Hant-TW", "sr-Latn-RS", "de-CH-1996", "es-419", "en-US-u-ca-gregory",
                    "x-private", "fil", "ar-EG"):
            assert check_locale(tag) == tag

    def test_parser_memo_is_bounded_in_bytes(self) -> None:
        """However many remembered bodies (each up to the 2 KiB it remembers), the memo stays under its byte
        budget, evicting the oldest first."""
        parser = RequestParser(default_model="m", max_prompt_chars=10_000, versions="v", max_bytes=64 * 1024)
        for i in range(500):
            body = json.dumps({"messages": [{"role": "user", "content": f"q{i}" * 100}]}).encode()
            parser.parse(body, "en")
        assert 0 < parser.bytes <= 64 * 1024 and len(parser) < 500

    async def test_invalid_key_flood_never_evicts_valid_keys(self) -> None:
        """10,000 made-up keys cost one KV read each and fill only the unknown-key table."""
        kv, clock = _CountingKV(), ManualClock()
        good = "eav_good_key"
        await kv.put(KEY_PREFIX + api_key_hash(good), api_key_record("acme", "pro", "g", 0))
        auth = Authenticator(kv, clock, cache_size=100, negative_cache_size=50)
        await auth.authenticate({"authorization": f"Bearer {good}"})
        for i in range(10_000):
            with pytest.raises(errors.Unauthorized):
                await auth.authenticate({"authorization": f"Bearer eav_bad_{i}"})
        reads = kv.reads
        await kv.delete(KEY_PREFIX + api_key_hash(good))  # still cached: proves it was never evicted
        assert (await auth.authenticate({"authorization": f"Bearer {good}"})).tenant == "acme"
        assert kv.reads == reads and reads == 10_001
        assert len(auth._unknown) == 50 and len(auth._known) == 1
        with pytest.raises(errors.Unauthorized):  # a repeated bad key is answered from the table
            await auth.authenticate({"authorization": "Bearer eav_bad_9999"})
        assert kv.reads == reads

    async def test_junk_credentials_cost_no_kv_read(self) -> None:
        """Over-long or non-printable credentials are refused before hashing or any lookup."""
        kv = _CountingKV()
        auth = Authenticator(kv, ManualClock())
        for junk in ("x" * 20_000, "eav_\x01", "eavé"):
            with pytest.raises(errors.Unauthorized):
                await auth.authenticate({"x-api-key": junk})
        assert kv.reads == 0


class _CountingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__(ManualClock())
        self.reads = 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        return await super().get(key)


def test_verify_jwt_errors_are_bounded_and_ascii_safe() -> None:
    """A refused token's message never carries more than a short quote of what the token said."""
    config = JwtConfig(keys=[JwtKey("HS256", secret=JWT_SECRET.encode())])
    with pytest.raises(JwtError) as info:
        verify_jwt(mint({"exp": 1}, secret=JWT_SECRET, header={"kid": "☃" * 3000}), config, 0)
    assert len(str(info.value)) < 120


def test_a_window_change_carries_the_count() -> None:
    """Keys of tiers with different windows share a counter: switching windows keeps what was counted."""
    from edge.ratelimit import sliding_window

    state = None
    for _ in range(5):
        state, decision = sliding_window(state, 1000.0, 5, 60)
        assert decision.allowed
    state, decision = sliding_window(state, 1001.0, 5, 10)
    assert not decision.allowed and state.current == 5


async def test_max_tokens_past_any_model_is_a_400() -> None:
    """A max_tokens no model's C int can hold is refused at the edge, not failed at the origin as a 5xx."""
    rig = Rig()
    raw = json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**300}).encode()
    error = refusal(await rig.send(await rig.key("acme"), raw=raw), 400)
    assert error["param"] == "max_tokens" and not rig.origin.requests
