"""The evaluation harness's logic (`eaves scenarios`): reading responses, scoring observations, targets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from edge.jwt import JwtConfig, JwtKey, verify_jwt
from loadtest.answers import Served, content_of, parse_cache_control
from loadtest.banks import Question
from loadtest.scenarios import (
    Caller,
    EntryLife,
    Observation,
    check_targets,
    lives_for,
    pick,
    read_kv_lives,
    served_from,
    summarise,
)
from origin.generators.simulator import answer_head


def served(route: str = "miss", *, status: int = 200, age: int | None = None, cc: str | None = None,
           user: str | None = None) -> Served:
    return Served(status, route, None, age, cc, "t" if user else None, user)


def obs(label: str, b: Served, *, a: Served | None = None, again: Served | None = None, text: str = "q") -> Observation:
    return Observation(Question(text, label), "api_key", "ua", "ub", a or served(user="ua"), b, again or served("hit"))


class TestCacheControl:
    def test_directives(self) -> None:
        """Names are case-insensitive, numbers read as numbers, flags as None, junk skipped."""
        assert parse_cache_control('Private, MAX-AGE=60, stale-while-revalidate="30", no-transform, x=abc') == {
            "private": None, "max-age": 60, "stale-while-revalidate": 30, "no-transform": None}
        assert parse_cache_control(None) == {} and parse_cache_control(" , ,") == {}

    @given(st.text())
    def test_any_header_parses_without_error(self, value: str) -> None:
        """Whatever a server sends, the parser returns directives (never raises)."""
        for name, number in parse_cache_control(value).items():
            assert name == name.strip().lower() and (number is None or number >= 0)

    @given(st.integers(0, 10**9), st.integers(0, 10**6), st.integers(0, 10**6))
    def test_lifetime_is_max_age_plus_swr(self, age: int, max_age: int, swr: int) -> None:
        """What an entry may live from creation: max-age (Age counts against it, RFC 9111 §4.2) plus
        stale-while-revalidate."""
        s = served("hit", age=age, cc=f"max-age={max_age}, stale-while-revalidate={swr}")
        assert s.lifetime_s() == max_age + swr

    def test_no_max_age_declares_no_lifetime(self) -> None:
        """no-store, or nothing at all, is not a lifetime."""
        assert served("miss", cc="no-store").lifetime_s() is None
        assert served("hit", age=5).lifetime_s() is None
        assert served("miss", cc="no-store").keeps_nothing()


class TestServedFrom:
    def test_reads_route_scope_age_and_the_named_user(self) -> None:
        """The headers and the simulator's head become one Served."""
        body = {"choices": [{"message": {"content": answer_head("t1", "visitor-1-a", "hi") + " more"}}]}
        response = httpx.Response(200, json=body, headers={"x-edge-route": "hit", "x-edge-scope": "user", "age": "12",
                                                            "cache-control": "private, max-age=48"})
        assert served_from(response) == Served(200, "hit", "user", 12, "private, max-age=48", "t1", "visitor-1-a")

    def test_refusals_and_foreign_bodies(self) -> None:
        """A 429 without a route header is named by its status; a body that is not a completion names nobody."""
        assert served_from(httpx.Response(429, json={"error": {}})).route == "rate_limited"
        s = served_from(httpx.Response(200, text="not json", headers={"x-edge-route": "miss", "age": "x"}))
        assert (s.user, s.tenant, s.age_s) == (None, None, None)


class TestContent:
    def test_plain_and_streamed_completions(self) -> None:
        """The assistant's text from a completion body, and from SSE chunks joined (comments and [DONE] skipped)."""
        from shared.sse import completion_to_sse
        from shared.wire import completion_body

        body = json.dumps(completion_body("hello there", model="m")).encode()
        assert content_of(body, streamed=False) == "hello there"
        assert content_of(b": heartbeat\n\n" + completion_to_sse(body), streamed=True) == "hello there"
        assert content_of(b"<html>", streamed=False) is None


class TestScoring:
    def test_a_hit_for_b_is_as_answer_even_when_nobody_is_named(self) -> None:
        """Only A asked before B on a fresh stack, so B's KV hit is A's answer."""
        assert obs("personal", served("hit")).b_served_a()
        assert obs("personal", served("stale")).b_served_a()

    def test_an_answer_naming_another_user_is_crossed(self) -> None:
        """Even generated fresh (a miss), an answer naming A given to B is a crossing."""
        assert obs("personal", served("miss", user="ua")).b_served_a()
        assert not obs("personal", served("miss", user="ub")).b_served_a()
        assert not obs("personal", served("edge")).b_served_a()

    def test_a_repeat_given_bs_answer_is_counted(self) -> None:
        """The other direction: A's second ask answered with the answer generated for B."""
        crossed = obs("personal", served("miss", user="ub"), again=served("hit", user="ub"))
        fine = obs("personal", served("miss", user="ub"), again=served("hit", user="ua"))
        assert summarise([crossed, fine])["labels"]["personal"]["a_repeat_served_other"] == 0.5

    def test_shares_per_label(self) -> None:
        """b_from_edge counts hit and stale; canned (edge) answers are counted apart."""
        report = summarise([obs("shareable", served("hit")), obs("shareable", served("stale")),
                            obs("shareable", served("miss", user="ub")), obs("shareable", served("edge")),
                            obs("personal", served("miss", user="ub"), again=served("hit"))])
        shareable, personal = report["labels"]["shareable"], report["labels"]["personal"]
        assert (shareable["b_from_edge"], shareable["b_canned"], shareable["b_routes"]) == (
            0.5, 0.25, {"hit": 1, "stale": 1, "miss": 1, "edge": 1})
        assert (personal["b_served_a"], personal["a_repeat_from_edge"]) == (0.0, 1.0)
        assert "time_sensitive" not in report["labels"]

    def test_fresh_questions_are_asked_once(self) -> None:
        """A fresh question has no B: its B shares are None, not zero."""
        fresh = Observation(Question("q", "fresh"), "jwt", "ua", "ub", served("miss"))
        label = summarise([fresh])["labels"]["fresh"]
        assert label["b_from_edge"] is None and label["a_routes"] == {"miss": 1}


class TestTimeSensitive:
    def _target(self, *observations: Observation) -> dict[str, Any]:
        return summarise(list(observations))["targets"]["time_sensitive_max_age_s"]

    def test_short_declared_lifetimes_meet_the_target(self) -> None:
        """Kept for 60 s plus 30 s stale, or not kept at all: met."""
        ok = obs("time_sensitive", served("hit", age=2, cc="max-age=58, stale-while-revalidate=30"),
                 a=served(cc="max-age=60, stale-while-revalidate=30"))
        none = obs("time_sensitive", served("miss", cc="no-store"), a=served(cc="no-store"),
                   again=served("miss", cc="no-store"))
        target = self._target(ok, none)
        assert target["met"] and target["value"] == 90

    def test_the_kv_is_the_truth(self) -> None:
        """Headers that declare nothing do not fail the target when the KV's own deadlines are known, and a
        stale window the headers never mention does."""
        undeclared = obs("time_sensitive", served("hit", age=3), text="Is it raining?")
        short = [("Is it raining?. the answer", EntryLife(60, 120, 86_400))]
        long = [("Is it raining?. the answer", EntryLife(60, 400, 86_400))]
        report = summarise([undeclared], short)
        assert report["targets"]["time_sensitive_max_age_s"] == {
            "label": "time_sensitive", "metric": "max_lifetime_s", "value": 120, "target": "<= 300", "met": True}
        assert report["labels"]["time_sensitive"]["kv_max_if_error_s"] == 86_400
        assert report["labels"]["time_sensitive"]["kv_entries_over_target"] == 0
        too_long = summarise([undeclared], long)
        assert not too_long["targets"]["time_sensitive_max_age_s"]["met"]
        assert too_long["labels"]["time_sensitive"]["kv_entries_over_target"] == 1

    def test_entries_match_their_question_exactly(self) -> None:
        """An entry answers the question whose first 60 characters and full stop it repeats, no other."""
        lives = [("hello. words", EntryLife(1, 1, 1)), ("hellooo. words", EntryLife(2, 2, 2)),
                 ("x" * 60 + ". words", EntryLife(3, 3, 3))]
        assert lives_for("hello", lives) == [EntryLife(1, 1, 1)]
        assert lives_for(" hellooo ", lives) == [EntryLife(2, 2, 2)]
        assert lives_for("x" * 80, lives) == [EntryLife(3, 3, 3)]
        assert lives_for("hell", lives) == []

    def test_a_lifetime_over_300_s_fails(self) -> None:
        """An hour's TTL on a question about now fails, even if the entry was only seconds old when seen."""
        target = self._target(obs("time_sensitive", served("hit", age=1, cc="max-age=3599"),
                                  a=served(cc="max-age=3600")))
        assert not target["met"] and target["value"] == 3600

    def test_served_from_the_kv_without_a_declared_lifetime_fails(self) -> None:
        """A hit whose lifetime nobody declares cannot be vouched for."""
        report = summarise([obs("time_sensitive", served("hit", age=0), a=served())])
        assert report["labels"]["time_sensitive"]["lifetime_undeclared"] == 1
        assert not report["targets"]["time_sensitive_max_age_s"]["met"]

    def test_an_old_age_seen_fails(self) -> None:
        """An Age over 300 s seen on a served answer fails whatever the header claims."""
        labels = {"time_sensitive": {"max_lifetime_s": 100, "max_age_seen_s": 400}}
        assert not check_targets(labels)["time_sensitive_max_age_s"]["met"]


class TestTargets:
    def test_bounds_are_inclusive(self) -> None:
        """Exactly 90 % from the edge and exactly 1 % crossed both meet their targets."""
        labels = {"shareable": {"b_from_edge": 0.90}, "personal": {"b_served_a": 0.01},
                  "time_sensitive": {"max_lifetime_s": 300, "max_age_seen_s": 12}}
        assert all(t["met"] for t in check_targets(labels).values())
        labels = {"shareable": {"b_from_edge": 0.8999}, "personal": {"b_served_a": 0.0101},
                  "time_sensitive": {"max_lifetime_s": 301, "max_age_seen_s": 0}}
        assert not any(t["met"] for t in check_targets(labels).values())

    def test_missing_labels_are_not_met(self) -> None:
        """A run that asked no shareable question cannot claim the shareable target."""
        assert not check_targets({})["shareable_b_from_edge"]["met"]


class TestCallers:
    def test_api_key_caller_names_the_user_in_the_request(self) -> None:
        """A website's backend: its key in Authorization, the end user in the OpenAI ``user`` field."""
        headers, body = Caller("api_key", "t", api_key="eav_x").request("hi", "visitor-1-a")
        assert headers == {"authorization": "Bearer eav_x"} and body["user"] == "visitor-1-a"

    def test_jwt_caller_names_the_user_in_sub(self) -> None:
        """A browser: a JWT the edge accepts, whose sub is the end user; no ``user`` field."""
        secret = "s" * 40
        headers, body = Caller("jwt", "tenant-j", jwt_secret=secret).request("hi", "visitor-2-b")
        token = headers["authorization"].removeprefix("Bearer ")
        claims = verify_jwt(token, JwtConfig(keys=[JwtKey("HS256", secret=secret.encode())]), time.time())
        assert (claims["sub"], claims["tenant"], "user" in body) == ("visitor-2-b", "tenant-j", False)
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert payload == claims


class TestPick:
    def test_sample_is_seeded_and_per_label(self) -> None:
        """The same seed picks the same questions; each label gets at most ``sample``."""
        banks = {label: [Question(f"{label}{i}", label) for i in range(10)]
                 for label in ("shareable", "personal", "time_sensitive", "small_talk", "fresh")}
        first, second = pick(banks, 3, 1), pick(banks, 3, 1)
        assert first == second and len(first) == 15
        assert len(pick(banks, None, 1)) == 50 and len(pick(banks, 99, 1)) == 50


def test_kv_lives_are_read_from_a_real_store(tmp_path: Path) -> None:
    """The deadlines of each answer entry come back from LMDB, keyed by the answer's text."""
    from shared.kv_lmdb import LmdbKV, close_env
    from shared.wire import CachedAnswer, completion_body

    body = json.dumps(completion_body(answer_head("t", "", "Is it raining?") + " yes", model="m")).encode()
    answer = CachedAnswer(body, 1000.0, 1060.0, "weather", 1090.0, 2000.0)
    store = LmdbKV(tmp_path / "kv")
    store.put("ans/t/abc", answer.body, metadata=answer.metadata())
    store.put("key/not-an-answer", b"{}")
    lives = read_kv_lives(tmp_path / "kv")
    close_env(tmp_path / "kv")
    assert lives == [("Is it raining?. yes", EntryLife(60.0, 90.0, 1000.0))]


def test_command_refuses_bad_options(capsys: Any) -> None:
    """Unknown callers or a zero sample are refused with a message, before any stack starts."""
    from eaves.cli import main

    assert main(["scenarios", "--callers", "api_key,carrier_pigeon"]) == 2
    assert "--callers takes api_key, jwt" in capsys.readouterr().err
    assert main(["scenarios", "--sample", "0"]) == 2
