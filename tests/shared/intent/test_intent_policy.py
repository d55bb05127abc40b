"""The routing policy: the shipped default routes sensibly, and bad policy files fail with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.intent import PolicyError, load_policy
from shared.intent.policy import TomlPolicy
from shared.intent.routing import Intent

MINIMAL = '[default]\naction = "cache"\nttl_s = 60\n'


class TestShippedPolicy:
    def test_abuse_is_blocked(self) -> None:
        """Anything in the abuse domain is blocked."""
        route = load_policy().route(Intent("prompt_injection", "abuse", 0.99))
        assert route.action == "block" and route.reason == "domain abuse"

    def test_out_of_scope_goes_to_origin(self) -> None:
        """Out-of-scope prompts reach the origin and are not cached."""
        assert load_policy().route(Intent("oos", "oos", 0.2)).action == "origin"

    def test_greeting_answered_at_edge_when_confident(self) -> None:
        """A confident greeting gets the canned answer; an unsure one falls to the domain's rule."""
        policy = load_policy()
        sure = policy.route(Intent("greeting", "small_talk", 0.9))
        assert sure.action == "edge" and sure.answer and sure.reason == "intent greeting"
        unsure = policy.route(Intent("greeting", "small_talk", 0.3))
        assert unsure.action == "cache" and unsure.reason == "domain small_talk"

    def test_default_caches_with_ttl(self) -> None:
        """An intent no rule names is cached with the default TTL."""
        route = load_policy().route(Intent("recipe", "kitchen_and_dining", 0.8))
        assert route.action == "cache" and route.ttl_s == 3600 and route.stale_s == 600

    def test_personal_domains_are_not_cached(self) -> None:
        """Banking answers are personal: they go to the origin."""
        assert load_policy().route(Intent("balance", "banking", 0.9)).action == "origin"

    def test_async_rule(self) -> None:
        """Bookings are handed to the origin in the background."""
        assert load_policy().route(Intent("book_flight", "travel", 0.9)).action == "async"


class TestVersion:
    def test_version_changes_with_content(self) -> None:
        """Two policies that differ in any byte have different versions."""
        a = TomlPolicy(MINIMAL)
        b = TomlPolicy(MINIMAL.replace("60", "61"))
        assert a.version != b.version
        assert a.version == TomlPolicy(MINIMAL).version

    def test_load_from_path(self, tmp_path: Path) -> None:
        """load_policy reads a user's file."""
        path = tmp_path / "p.toml"
        path.write_text(MINIMAL + '[intents.greeting]\naction = "edge"\nanswer = "Hi"\n')
        assert load_policy(path).route(Intent("greeting", "x", 1.0)).answer == "Hi"


class TestOriginBudgets:
    def test_stale_if_error_and_timeout_reach_the_route(self) -> None:
        """stale_if_error_s and timeout_s on a cache rule end up on its Route, timeout as a float."""
        policy = TomlPolicy(MINIMAL + '[intents.weather]\naction = "cache"\nttl_s = 300\n'
                            'stale_if_error_s = 3600\ntimeout_s = 2\n')
        route = policy.route(Intent("weather", "utility", 0.9))
        assert (route.ttl_s, route.stale_if_error_s, route.timeout_s) == (300, 3600, 2.0)
        assert isinstance(route.timeout_s, float)

    def test_zero_stale_if_error_is_kept(self) -> None:
        """stale_if_error_s = 0 means "never serve stale on error", not "use the edge's default"."""
        policy = TomlPolicy(MINIMAL + '[intents.news]\naction = "cache"\nttl_s = 60\nstale_if_error_s = 0\n')
        assert policy.route(Intent("news", "x", 0.9)).stale_if_error_s == 0

    @pytest.mark.parametrize("action", ["origin", "async"])
    def test_timeout_on_origin_and_async_rules(self, action: str) -> None:
        """Rules that forward to the origin take a fractional timeout."""
        policy = TomlPolicy(MINIMAL + f'[domains.travel]\naction = "{action}"\ntimeout_s = 0.5\n')
        assert policy.route(Intent("book_flight", "travel", 0.9)).timeout_s == 0.5

    def test_unset_means_the_edge_defaults(self) -> None:
        """Without the keys the Route carries None, so the edge's settings apply."""
        route = TomlPolicy(MINIMAL).route(Intent("anything", "x", 0.9))
        assert route.stale_if_error_s is None and route.timeout_s is None

    def test_shipped_policy_parses_with_the_new_keys_allowed(self) -> None:
        """The shipped policy still loads (the new keys are optional)."""
        assert load_policy().default.route.action == "cache"


class TestValidation:
    @pytest.mark.parametrize(("text", "message"), [
        ('[default]\naction = "teleport"\n', "action must be one of"),
        ('[default]\naction = "cache"\n', "needs ttl_s"),
        ('[default]\naction = "cache"\nttl_s = -5\n', "ttl_s must be"),
        (MINIMAL + '[intents.hi]\naction = "edge"\n', "needs a non-empty answer"),
        (MINIMAL + '[intents.hi]\naction = "origin"\nttl_s = 5\n', "cache rules only"),
        (MINIMAL + '[intents.hi]\naction = "block"\ncolour = "red"\n', "unknown key"),
        (MINIMAL + '[intents.hi]\naction = "block"\nmin_confidence = 2\n', "min_confidence"),
        (MINIMAL + '[routes]\n', "unknown section"),
        ('[domains.abuse]\naction = "block"\n', "default"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\nstale_if_error_s = -1\n',
         "stale_if_error_s must be a whole number of seconds >= 0, not -1"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\nstale_if_error_s = 1.5\n',
         "stale_if_error_s must be a whole number"),
        (MINIMAL + '[intents.hi]\naction = "origin"\nstale_if_error_s = 60\n',
         "stale_if_error_s can be set on cache rules only (action is 'origin')"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = 0\n',
         "timeout_s must be a number of seconds > 0"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = -2.5\n', "timeout_s must be"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = "3s"\n', "not '3s'"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = true\n', "timeout_s must be"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = inf\n', "timeout_s must be"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\ntimeout_s = nan\n', "timeout_s must be"),
        (MINIMAL + '[intents.hi]\naction = "block"\ntimeout_s = 2\n',
         "timeout_s applies to rules that reach the origin"),
        (MINIMAL + '[intents.hi]\naction = "edge"\nanswer = "Hi"\ntimeout_s = 2\n', "action 'edge' never does"),
        ("[default\n", "not valid TOML"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\nscope = "everyone"\n', "scope must be one of"),
        (MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\nscope = "none"\n', "keeps nothing"),
        (MINIMAL + '[intents.hi]\naction = "origin"\nscope = "user"\n', "applies to cache rules only"),
    ])
    def test_bad_policies(self, text: str, message: str) -> None:
        """Each mistake is a PolicyError whose message says what to fix."""
        with pytest.raises(PolicyError, match=re.escape(message)):
            TomlPolicy(text, "p.toml")

    def test_error_names_file_and_rule(self) -> None:
        """The message says which file and which rule to fix."""
        with pytest.raises(PolicyError, match=re.escape("p.toml [domains.travel]: timeout_s")):
            TomlPolicy(MINIMAL + '[domains.travel]\naction = "origin"\ntimeout_s = 0\n', "p.toml")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing policy file is a PolicyError naming it."""
        with pytest.raises(PolicyError, match=r"missing\.toml"):
            load_policy(tmp_path / "missing.toml")


class TestScope:
    def test_cache_rules_default_to_shared_and_others_to_none(self) -> None:
        """A cache rule without a scope is shared by the tenant; nothing else is stored at all."""
        policy = TomlPolicy(MINIMAL + '[intents.hi]\naction = "origin"\n', "p.toml")
        assert policy.default.route.scope == "shared"
        assert policy.intents["hi"].route.scope == "none"

    def test_user_scope_is_kept(self) -> None:
        """``scope = "user"`` reaches the route the edge acts on."""
        policy = TomlPolicy(MINIMAL + '[intents.hi]\naction = "cache"\nttl_s = 5\nscope = "user"\n', "p.toml")
        assert policy.route(Intent("hi", "d", 1.0)).scope == "user"
