"""The cache as an access-control check, end to end in-process (edge → real origin app → in-memory KV):
every answer served is the one the origin would have given this asker; scopes; who may overwrite; the
headers that say the decision. Careless and hostile clients, and hypothesis for the isolation properties.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.jwt import JwtConfig, JwtKey
from edge.memory import TaskBackground
from origin.generators.base import GenerationError, GenerationRequest, Piece
from shared.intent import load_policy
from shared.intent.routing import Intent, Route
from tests.tokens import mint
from tests.world import World, body_of, make_world

TTL, STALE = 600, 120
ONE_DAY = 86_400  # EAVES_STALE_IF_ERROR_S's default (README: "default one day")
# What a cacheable answer declares: its freshness, then its stale windows (RFC 5861).
WINDOWS = f"max-age={TTL}, stale-while-revalidate={STALE}, stale-if-error={ONE_DAY}"
SECRET = "jwt-secret-for-tests-0123456789abcdef"


@dataclass
class ScopePolicy:
    """Every prompt cached with one scope; the version goes into the key like a real policy's."""

    scope: str = "shared"
    version: str = "scope-policy-1"

    def route(self, intent: Intent, text: str = "") -> Route:
        return Route("cache", ttl_s=TTL, stale_s=STALE, scope=self.scope)  # type: ignore[arg-type]


class Personal:
    """A personalising origin: the answer names the tenant, the end user it was told about and the prompt,
    so a test can compare the answer served with the question asked and the asker. ``finish`` sets the
    finish_reason of the next generations; ``fail`` makes them fail."""

    name = "personal"

    def __init__(self) -> None:
        self.generations = 0
        self.requests: list[GenerationRequest] = []
        self.finish = "stop"
        self.fail = False

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return 1

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.generations += 1
        self.requests.append(request)
        if self.fail:
            raise GenerationError("the model failed")
        answer = {"tenant": request.tenant, "user": request.user, "prompt": request.prompt,
                  "max_tokens": request.max_tokens, "n": self.generations}
        yield Piece(json.dumps(answer), 1, finish_reason=self.finish)


async def world_with(scope: str = "shared", **settings: Any) -> tuple[World, Personal]:
    world = await make_world(policy=ScopePolicy(scope), **settings)
    personal = Personal()
    world.origin.generator = personal
    return world, personal


def answer(response: Any) -> dict[str, Any]:
    data = body_of(response)
    result: dict[str, Any] = json.loads(data["choices"][0]["message"]["content"])
    result["finish_reason"] = data["choices"][0]["finish_reason"]
    return result


def ask(prompt: str, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": prompt}], **fields}


async def drain(world: World) -> None:
    background = world.edge.background
    assert isinstance(background, TaskBackground)
    await background.drain()


class TestParametersAreKeyed:
    @pytest.mark.parametrize(("name", "value"), [
        ("max_tokens", 1), ("max_completion_tokens", 1), ("stop", ["\n"]), ("temperature", 0.0),
        ("top_p", 0.5), ("seed", 3), ("presence_penalty", 0.5), ("frequency_penalty", 0.5),
        ("logit_bias", {"1": 5}), ("response_format", {"type": "json_object"}),
        ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "none"),
        ("a_field_from_next_year", True),
    ])
    async def test_a_parameter_never_gets_the_plain_answer(self, name: str, value: Any) -> None:
        """After a plain request is cached, the same question with one more parameter is a miss, and
        the plain question is still served the plain answer."""
        world, personal = await world_with()
        plain = await world.chat(body=ask("What is a cache?"))
        varied = await world.chat(body=ask("What is a cache?", **{name: value}))
        if name == "tools":  # this generator cannot call tools: refused, never the plain answer
            assert varied.status == 400 and body_of(varied)["error"]["code"] == "tools_not_supported"
        else:
            assert varied.header("x-edge-route") == "miss" and personal.generations == 2
        again = await world.chat(body=ask("What is a cache?"))
        assert again.header("x-edge-route") == "hit" and body_of(again) == body_of(plain)

    async def test_truncated_answer_is_never_stored(self) -> None:
        """max_tokens that cuts the answer short (finish_reason length) reaches the asker as length and is
        never stored, so neither it nor the plain question is served a truncated answer."""
        world, personal = await world_with()
        personal.finish = "length"
        short = await world.chat(body=ask("Explain caching", max_tokens=1))
        assert answer(short)["finish_reason"] == "length"
        assert short.header("cache-control") == "no-store" and short.header("x-edge-scope") == "none"
        assert await world.answer_keys() == []
        again = await world.chat(body=ask("Explain caching", max_tokens=1))
        assert again.header("x-edge-route") == "miss"
        personal.finish = "stop"
        plain = await world.chat(body=ask("Explain caching"))
        assert plain.header("x-edge-route") == "miss" and answer(plain)["finish_reason"] == "stop"

    @pytest.mark.parametrize("reason", ["length", "content_filter", "tool_calls"])
    async def test_only_stop_is_stored(self, reason: str) -> None:
        """Any finish_reason but "stop" is not the answer to the question: nothing is written."""
        world, personal = await world_with()
        personal.finish = reason
        response = await world.chat("q")
        assert response.status == 200 and answer(response)["finish_reason"] == reason
        assert await world.answer_keys() == []

    async def test_stream_says_the_finish_reason_and_is_not_stored(self) -> None:
        """A streamed answer cut short ends with finish_reason length and is not written either."""
        world, personal = await world_with()
        personal.finish = "length"
        response = await world.chat(body=ask("q", stream=True, max_tokens=1))
        assert not isinstance(response.body, bytes)
        raw = b"".join([part async for part in response.body])
        assert b'"finish_reason":"length"' in raw
        assert await world.answer_keys() == []

    async def test_stream_and_plain_share_an_answer(self) -> None:
        """stream is on the documented allow-list: a streamed request is a hit for the plain answer."""
        world, _ = await world_with()
        await world.chat(body=ask("q"))
        streamed = await world.chat(body=ask("q", stream=True))
        assert streamed.header("x-edge-route") == "hit"


class TestScopes:
    async def test_user_scope_is_per_end_user(self) -> None:
        """A user-scoped answer is served to its end user again, never to another user or to a caller
        who names no user; each of them gets their own generation."""
        world, personal = await world_with("user")
        alice = await world.chat(body=ask("What's on my calendar?", user="alice"))
        assert alice.header("x-edge-scope") == "user" and answer(alice)["user"] == "alice"
        assert (await world.chat(body=ask("What's on my calendar?", user="alice"))).header("x-edge-route") == "hit"
        bob = await world.chat(body=ask("What's on my calendar?", user="bob"))
        assert bob.header("x-edge-route") == "miss" and answer(bob)["user"] == "bob"
        anonymous = await world.chat(body=ask("What's on my calendar?"))
        assert anonymous.header("x-edge-route") == "miss" and answer(anonymous)["user"] == ""
        assert personal.generations == 3

    async def test_user_scope_without_a_user_is_not_cached(self) -> None:
        """When the end user is unknown a user-scoped answer is kept for nobody, and the response says so."""
        world, personal = await world_with("user")
        first = await world.chat("Where did I park?")
        assert first.header("x-edge-scope") == "none" and first.header("cache-control") == "no-store"
        assert await world.answer_keys() == []
        assert (await world.chat("Where did I park?")).header("x-edge-route") == "miss"
        assert personal.generations == 2

    async def test_scope_none_is_never_cached(self) -> None:
        """Scope none: the origin answers every time and nothing is written."""
        world, personal = await world_with("none")
        for _ in range(2):
            response = await world.chat(body=ask("How long is the queue now?", user="alice"))
            assert response.header("x-edge-route") == "miss" and response.header("x-edge-scope") == "none"
        assert personal.generations == 2 and await world.answer_keys() == []

    async def test_shared_scope_is_shared_by_users_and_not_personalised(self) -> None:
        """A shared answer serves every user of the tenant, and the origin was not told who asked, so a
        personalising origin cannot put one user's data into everyone's answer."""
        world, personal = await world_with("shared")
        first = await world.chat(body=ask("What are your opening hours?", user="alice"))
        assert answer(first)["user"] == "" and personal.requests[0].user == ""
        second = await world.chat(body=ask("What are your opening hours?", user="bob"))
        assert second.header("x-edge-route") == "hit" and body_of(second) == body_of(first)

    async def test_end_user_is_forwarded_signed_when_not_shared(self) -> None:
        """For user and none scopes the origin hears the end user (x-eaves-user, inside the signature)."""
        for scope in ("user", "none"):
            world, personal = await world_with(scope)
            await world.chat(body=ask("mine", user="alice"))
            assert personal.requests[-1].user == "alice"

    async def test_other_tenant_never_reads_user_entry(self) -> None:
        """Same end-user id in two tenants: two different users, two entries."""
        world, _personal = await world_with("user")
        await world.chat(body=ask("my orders", user="u1"), key="acme")
        other = await world.chat(body=ask("my orders", user="u1"), key="beta")
        assert other.header("x-edge-route") == "miss" and answer(other)["tenant"] == "beta"

    async def test_same_user_different_scopes_never_leak_to_a_shared_key(self) -> None:
        """An answer generated for a user under user scope is written under that user's key only."""
        world, _ = await world_with("user")
        await world.chat(body=ask("my orders", user="alice"))
        [key] = await world.answer_keys()
        assert key.startswith("ans/acme/u/") and "alice" not in key


@dataclass
class ReadsEverythingShared:
    """A decision head that reads every prompt as shareable: what the [freshness] backstop is for."""

    version: str = "reads-shared-1"

    def classify(self, text: str) -> Intent:
        return Intent("oos", "oos", 0.9, "shared", 0.9)


class TestFreshnessBackstop:
    async def test_a_prompt_about_now_read_as_shared_is_kept_a_minute_for_its_asker_only(self) -> None:
        """The shipped policy's [freshness] cues: even when the model reads "today" as shareable, the
        answer is kept per user for at most 60 s, says so, and another user gets a fresh generation."""
        world = await make_world(classifier=ReadsEverythingShared(), policy=load_policy())
        personal = Personal()
        world.origin.generator = personal
        prompt = "Is the Lisbon ferry running today?"
        alice = await world.chat(body=ask(prompt, user="alice"))
        assert alice.header("x-edge-scope") == "user"
        assert alice.header("cache-control") == "private, max-age=60"
        assert (await world.chat(body=ask(prompt, user="alice"))).header("x-edge-route") == "hit"
        bob = await world.chat(body=ask(prompt, user="bob"))
        assert bob.header("x-edge-route") == "miss" and answer(bob)["user"] == "bob"
        faq = await world.chat(body=ask("How do I reset my password?", user="alice"))
        assert faq.header("x-edge-scope") == "shared" and "max-age=3600" in faq.header("cache-control")
        assert personal.generations == 3


class TestEndUser:
    async def test_invalid_user_field_is_400_and_writes_nothing(self) -> None:
        """A user id outside the rule is a 400 naming 'user', before any KV read, write or origin call."""
        world, personal = await world_with("user")
        for bad in ("x" * 129, "a b", "ünïcode", 5):
            response = await world.chat(body=ask("q", user=bad))
            assert response.status == 400, bad
            error = body_of(response)["error"]
            assert error["param"] == "user" and "user" in error["message"]
            assert response.header("x-edge-scope") == "none"
        assert personal.generations == 0 and await world.answer_keys() == []

    async def test_safety_identifier_names_the_end_user_when_user_is_absent(self) -> None:
        """OpenAI's newer end-user field: a user-scoped answer is kept per safety_identifier as per user, and
        `user` wins when both are given."""
        world, personal = await world_with("user")
        first = await world.chat(body=ask("my plan", safety_identifier="alice"))
        assert answer(first)["user"] == "alice" and first.header("x-edge-scope") == "user"
        again = await world.chat(body=ask("my plan", safety_identifier="alice"))
        assert again.header("x-edge-route") == "hit"
        other = await world.chat(body=ask("my plan", safety_identifier="bob"))
        assert other.header("x-edge-route") == "miss" and answer(other)["user"] == "bob"
        both = await world.chat(body=ask("my plan", user="carol", safety_identifier="alice"))
        assert both.header("x-edge-route") == "miss" and answer(both)["user"] == "carol"
        assert personal.generations == 3

    async def test_a_shared_answer_is_shared_across_safety_identifiers(self) -> None:
        """safety_identifier names the end user, so it is not part of a shared answer's key."""
        world, personal = await world_with("shared")
        await world.chat(body=ask("What are your opening hours?", safety_identifier="alice"))
        second = await world.chat(body=ask("What are your opening hours?", safety_identifier="bob"))
        assert second.header("x-edge-route") == "hit" and personal.generations == 1

    @pytest.mark.parametrize(("name", "values"), [("prompt_cache_key", ("conv-1", "conv-2")),
                                                  ("service_tier", ("auto", "flex")),
                                                  ("prompt_cache_retention", ("in_memory", "24h"))])
    async def test_openai_cache_hints_do_not_split_a_shared_answer(self, name: str, values: tuple[str, str]
                                                                    ) -> None:
        world, personal = await world_with("shared")
        await world.chat(body=ask("What are your opening hours?", **{name: values[0]}))
        second = await world.chat(body=ask("What are your opening hours?", **{name: values[1]}))
        assert second.header("x-edge-route") == "hit" and personal.generations == 1

    async def test_invalid_safety_identifier_is_400_naming_it(self) -> None:
        world, personal = await world_with("user")
        for bad in ("a b", 7):
            response = await world.chat(body=ask("q", safety_identifier=bad))
            assert response.status == 400, bad
            assert body_of(response)["error"]["param"] == "safety_identifier"
        assert personal.generations == 0 and await world.answer_keys() == []

    async def jwt_world(self, **config: Any) -> tuple[World, Personal]:
        return await world_with("user", jwt=JwtConfig(keys=[JwtKey("HS256", secret=SECRET.encode())], **config))

    def token(self, **claims: Any) -> str:
        return mint({"tenant": "acme", "exp": 4_000_000_000, **claims}, secret=SECRET)

    async def test_jwt_sub_is_the_end_user(self) -> None:
        """A JWT caller's end user is its sub claim; another sub is another user."""
        world, _ = await self.jwt_world()
        first = await world.chat("my plan", key=self.token(sub="alice"))
        assert answer(first)["user"] == "alice" and first.header("x-edge-scope") == "user"
        assert (await world.chat("my plan", key=self.token(sub="alice"))).header("x-edge-route") == "hit"
        assert (await world.chat("my plan", key=self.token(sub="bob"))).header("x-edge-route") == "miss"

    async def test_user_claim_is_configurable(self) -> None:
        """user_claim names the claim that holds the end user."""
        world, _ = await self.jwt_world(user_claim="uid")
        response = await world.chat("my plan", key=self.token(sub="ignored", uid="u-7"))
        assert answer(response)["user"] == "u-7"

    async def test_jwt_caller_cannot_claim_another_user(self) -> None:
        """A JWT caller that sends a different 'user' (or any 'user' when the token names none) gets a 400,
        and reads nothing: the signed claim alone says who the end user is."""
        world, personal = await self.jwt_world()
        await world.chat(body=ask("my plan", user="alice"), key="acme")  # alice's answer, via the backend key
        for token in (self.token(sub="mallory"), self.token()):
            response = await world.chat(body=ask("my plan", user="alice"), key=token)
            assert response.status == 400 and body_of(response)["error"]["code"] == "user_mismatch"
        same = await world.chat(body=ask("my plan", user="bob"), key=self.token(sub="bob"))
        assert same.status == 200 and answer(same)["user"] == "bob"
        assert personal.generations == 2

    async def test_responses_api_names_the_field_it_was_sent(self) -> None:
        """/v1/responses takes the end user as 'user' or 'safety_identifier' too; an invalid one, or a JWT
        caller's that is not the token's user, is refused naming the field the caller sent (it was
        translated to chat's 'user' and named so), and a JWT caller's matching one is served."""
        world, personal = await self.jwt_world()
        for name in ("user", "safety_identifier"):
            for wrong in ("a b", 0, [], False):
                body = {"model": "m", "input": "my plan", name: wrong}
                bad = await world.chat(body=body, key="acme", path="/v1/responses")
                assert bad.status == 400 and body_of(bad)["error"]["param"] == name, (name, wrong)
            body = {"model": "m", "input": "my plan", name: "alice"}
            other = await world.chat(body=body, key=self.token(sub="mallory"), path="/v1/responses")
            error = body_of(other)["error"]
            assert other.status == 400 and error["code"] == "user_mismatch" and error["param"] == name, name
            same = await world.chat(body=body, key=self.token(sub="alice"), path="/v1/responses")
            assert same.status == 200 and same.header("x-edge-scope") == "user", name
        assert personal.generations == 1  # alice's answer, kept for her: her second ask is a hit

    async def test_jwt_caller_cannot_claim_another_user_through_safety_identifier(self) -> None:
        """safety_identifier names the end user as 'user' does, so a JWT caller cannot use it to read another
        user's answers either; the refusal names the field that was sent."""
        world, personal = await self.jwt_world()
        await world.chat(body=ask("my plan", user="alice"), key="acme")
        response = await world.chat(body=ask("my plan", safety_identifier="alice"), key=self.token(sub="mallory"))
        error = body_of(response)["error"]
        assert response.status == 400 and error["code"] == "user_mismatch" and error["param"] == "safety_identifier"
        assert "'safety_identifier'" in error["message"]
        assert personal.generations == 1

    @pytest.mark.parametrize("sub", ["a b", "x" * 200, 42])
    async def test_invalid_user_claim_is_401_naming_the_claim(self, sub: Any) -> None:
        """A sub that cannot be an end-user id is refused, naming the claim."""
        world, personal = await self.jwt_world()
        response = await world.chat("q", key=self.token(sub=sub))
        assert response.status == 401 and "'sub'" in body_of(response)["error"]["message"]
        assert personal.generations == 0


class TestTenants:
    @pytest.mark.parametrize("tenant", ["acme ", "h-" + "0" * 32 + "/x", "ácme", "x" * 65, "a:b", ""])
    async def test_stored_key_with_invalid_tenant_is_refused(self, tenant: str) -> None:
        """An API key stored before tenant ids were checked is a 403 naming the rule; nothing is read,
        written or generated, and other tenants are unaffected."""
        world, personal = await world_with()
        await world.add_key("old", tenant)
        response = await world.chat(key="old")
        if tenant == "":
            assert response.status in (401, 403)
        else:
            assert response.status == 403 and body_of(response)["error"]["code"] == "invalid_tenant"
            assert "A-Z" in body_of(response)["error"]["message"]
        assert personal.generations == 0 and await world.answer_keys() == []
        assert (await world.chat(key="acme")).status == 200

    @pytest.mark.parametrize("tenant", ["acme ", "acme/../beta", "ácme", "x" * 600, 7])
    async def test_jwt_tenant_claim_is_validated(self, tenant: Any) -> None:
        """A JWT whose tenant claim is outside the rule is a 401 naming the claim."""
        world, personal = await world_with(jwt=JwtConfig(keys=[JwtKey("HS256", secret=SECRET.encode())]))
        token = mint({"tenant": tenant, "exp": 4_000_000_000}, secret=SECRET)
        response = await world.chat(key=token)
        assert response.status == 401 and "'tenant'" in body_of(response)["error"]["message"]
        assert personal.generations == 0 and await world.answer_keys() == []


class TestWhoMayOverwrite:
    async def test_careless_no_cache_with_other_parameters_cannot_replace(self) -> None:
        """A no-cache request with max_tokens 1 regenerates for itself only: the shared plain answer stays."""
        world, personal = await world_with()
        plain = await world.chat(body=ask("What is a cache?"))
        personal.finish = "length"
        forced = await world.chat(body=ask("What is a cache?", max_tokens=1), headers={"cache-control": "no-cache"})
        assert forced.header("x-edge-route") == "miss"
        again = await world.chat(body=ask("What is a cache?"))
        assert again.header("x-edge-route") == "hit" and body_of(again) == body_of(plain)

    async def test_hostile_no_cache_that_ends_badly_leaves_the_entry(self) -> None:
        """A no-cache refresh of the identical request that comes back truncated, or fails, leaves the
        stored complete answer in place."""
        world, personal = await world_with()
        plain = await world.chat("q")
        personal.finish = "length"
        await world.chat("q", headers={"cache-control": "no-cache"})
        personal.finish, personal.fail = "stop", True
        failed = await world.chat("q", headers={"cache-control": "no-cache"})
        assert failed.status == 502  # no-cache does not read, so there is no stale answer to fall back on
        personal.fail = False
        assert body_of(await world.chat("q")) == body_of(plain)

    async def test_no_cache_may_replace_with_a_complete_answer_to_the_same_request(self) -> None:
        """The one thing no-cache may do: replace an entry with a fresh complete answer to the identical
        request, in the asker's own scope."""
        world, _ = await world_with()
        await world.chat("q")
        fresh = await world.chat("q", headers={"cache-control": "no-cache"})
        again = await world.chat("q")
        assert again.header("x-edge-route") == "hit" and body_of(again) == body_of(fresh)

    async def test_one_users_no_cache_cannot_touch_anothers_entry(self) -> None:
        """User scope: bob's no-cache writes bob's entry; alice keeps hers."""
        world, _ = await world_with("user")
        alice = await world.chat(body=ask("my plan", user="alice"))
        await world.chat(body=ask("my plan", user="bob"), headers={"cache-control": "no-cache"})
        again = await world.chat(body=ask("my plan", user="alice"))
        assert again.header("x-edge-route") == "hit" and body_of(again) == body_of(alice)

    async def test_stale_refresh_of_a_user_entry_stays_that_users(self) -> None:
        """A stale-while-revalidate refresh regenerates for the same end user, under the same key."""
        world, personal = await world_with("user")
        await world.chat(body=ask("my plan", user="alice"))
        world.clock.advance(TTL + 1)
        stale = await world.chat(body=ask("my plan", user="alice"))
        assert stale.header("x-edge-route") == "stale"
        await drain(world)
        assert personal.requests[-1].user == "alice" and len(await world.answer_keys()) == 1
        refreshed = await world.chat(body=ask("my plan", user="alice"))
        assert refreshed.header("x-edge-route") == "hit" and answer(refreshed)["n"] == 2


class TestSayingTheDecision:
    async def test_miss_and_hit_carry_max_age_and_age(self) -> None:
        """A cacheable miss says max-age=<ttl> with its stale windows; a hit says the same and its Age, so the
        remaining lifetime is max-age minus Age (RFC 9111 §4.2.3)."""
        world, _ = await world_with()
        miss = await world.chat("q")
        assert miss.header("x-edge-scope") == "shared" and miss.header("cache-control") == WINDOWS
        world.clock.advance(100)
        hit = await world.chat("q")
        assert hit.header("cache-control") == WINDOWS and hit.header("age") in ("99", "100")
        assert hit.header("x-edge-scope") == "shared"

    async def test_user_scope_is_private(self) -> None:
        """User-scoped answers are marked private, on the miss and on the hit."""
        world, _ = await world_with("user")
        for route in ("miss", "hit"):
            response = await world.chat(body=ask("mine", user="alice"))
            assert response.header("x-edge-route") == route
            assert response.header("cache-control") == f"private, {WINDOWS}"
            assert response.header("x-edge-scope") == "user"

    async def test_stale_hit_says_its_age(self) -> None:
        """A stale answer's Age is past its max-age: clients see it is stale."""
        world, _ = await world_with()
        await world.chat("q")
        world.clock.advance(TTL + 5)
        stale = await world.chat("q")
        assert stale.header("x-edge-route") == "stale" and stale.header("cache-control") == WINDOWS
        assert int(stale.header("age") or 0) > TTL

    async def test_nothing_kept_says_no_store(self) -> None:
        """Errors, client no-store and uncacheable routes: scope none, no-store."""
        world, _ = await world_with()
        kept_nothing = [await world.chat("q", headers={"cache-control": "no-store"}),
                        await world.chat(body={"messages": []}),
                        await world.chat(key="eav_forged")]
        for response in kept_nothing:
            assert response.header("x-edge-scope") == "none" and response.header("cache-control") == "no-store"

    async def test_every_chat_response_names_one_scope(self) -> None:
        """Exactly one x-edge-scope and one Cache-Control on every chat response."""
        world, _ = await world_with()
        for response in (await world.chat("q"), await world.chat("q"), await world.chat(body={"x": 1})):
            assert [k for k, _ in response.headers].count("x-edge-scope") == 1
            assert [k for k, _ in response.headers].count("cache-control") == 1


# ------------------------------------------------------------------ properties

USERS = st.sampled_from(["", "alice", "bob", "carol@example.com"])
TENANT_KEYS = st.sampled_from(["acme", "beta"])
PROMPTS = st.sampled_from(["my orders", "opening hours", "my orders\n", "My orders", "my  orders"])
SCOPES = st.sampled_from(["shared", "user", "none"])
STEPS = st.lists(st.tuples(TENANT_KEYS, USERS, PROMPTS, st.booleans(), st.integers(0, TTL + STALE)),
                 min_size=1, max_size=12)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCOPES, STEPS)
def test_every_answer_served_was_made_for_this_asker_and_question(scope: str, steps: list[Any]) -> None:
    """Whatever the order, users, no-cache and clock, every answer served (hit, stale or miss) was
    generated for the asker's tenant, for the question asked (after the safe normalisation only), and,
    when it names an end user, for this end user; a user-scoped answer never reaches another user or an
    anonymous caller."""

    async def run() -> None:
        world, _ = await world_with(scope)
        for tenant, user, prompt, no_cache, wait in steps:
            world.clock.advance(wait)
            fields = {"user": user} if user else {}
            headers = {"cache-control": "no-cache"} if no_cache else {}
            response = await world.chat(body=ask(prompt, **fields), key=tenant, headers=headers)
            assert response.status == 200
            served = answer(response)
            assert served["tenant"] == tenant
            assert served["prompt"].rstrip() == prompt.rstrip()  # only trailing whitespace may merge
            assert served["user"] in ("", user)
            if response.header("x-edge-scope") == "user" or scope == "user":
                assert served["user"] == user
            await drain(world)

    asyncio.run(run())


def test_user_claim_is_read_from_eaves_jwt() -> None:
    """EAVES_JWT's user_claim reaches the JWT config; without it the end user is the sub claim."""
    from edge.settings import EdgeSettings

    keys = [{"alg": "HS256", "secret": SECRET}]
    base = {"EAVES_ORIGIN_SECRET": "s" * 32}
    configured = EdgeSettings.from_mapping({**base, "EAVES_JWT": json.dumps({"keys": keys, "user_claim": "uid"})})
    default = EdgeSettings.from_mapping({**base, "EAVES_JWT": json.dumps({"keys": keys})})
    assert configured.jwt is not None and configured.jwt.user_claim == "uid"
    assert default.jwt is not None and default.jwt.user_claim == "sub"


ANY_TENANT = st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.text(st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["h-" + "0" * 32, "acme/", "acme/s", "beta/../acme", "acme ", "x" * 65, "x" * 600]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TENANT, st.booleans())
def test_any_tenant_is_either_its_own_namespace_or_refused_and_writes_nothing(tenant: str, by_jwt: bool) -> None:
    """Tenants from the full Unicode range and look-alike names, by API key record or JWT claim: a valid
    tenant's answers land only under ans/<tenant>/ and never reach another tenant; an invalid one is a JSON
    4xx, and nothing is generated or written."""

    async def run() -> None:
        world, personal = await world_with(jwt=JwtConfig(keys=[JwtKey("HS256", secret=SECRET.encode())]))
        await world.chat("shared question", key="acme")  # another tenant's entry that must stay unread
        before = set(await world.answer_keys())
        if by_jwt:
            credential = mint({"tenant": tenant, "exp": 4_000_000_000}, secret=SECRET)
        else:
            await world.add_key("probe", tenant)
            credential = "probe"
        response = await world.chat("shared question", key=credential)
        written = set(await world.answer_keys()) - before
        if response.status == 200:
            assert answer(response)["tenant"] == tenant and response.header("x-edge-route") == "miss"
            assert written and all(k.startswith(f"ans/{tenant}/") for k in written)
        else:
            assert 400 <= response.status < 500 and body_of(response)["error"]["message"]
            assert written == set() and personal.generations == 1

    asyncio.run(run())
