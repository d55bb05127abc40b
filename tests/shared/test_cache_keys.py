"""Cache keys: normalisation, what changes the key, and the key's shape."""

from __future__ import annotations

from shared.cache_keys import AnswerScope, answer_key, normalise_prompt, tenant_prefix

SCOPE = AnswerScope("acme", "m1", "be brief", "en", "v1")


class TestNormalise:
    def test_case_whitespace_and_width_fold(self) -> None:
        """Case, runs of whitespace, full-width forms and trailing punctuation do not change the prompt."""
        # Full-width letters on purpose: NFKC must fold them.
        shouted = "\uff37\uff25\uff21\uff34\uff28\uff25\uff32"
        assert normalise_prompt(f"  What   IS\tthe {shouted}?? ") == "what is the weather"

    def test_inner_punctuation_kept(self) -> None:
        """Punctuation inside the prompt is meaning and is kept."""
        assert normalise_prompt("a-b, c?") == "a-b, c"


class TestAnswerKey:
    def test_equivalent_prompts_share_a_key(self) -> None:
        """Prompts that normalise the same map to one key."""
        assert answer_key(SCOPE, "Reset my password") == answer_key(SCOPE, "reset  my PASSWORD.")

    def test_everything_in_scope_changes_the_key(self) -> None:
        """Tenant, model, system prompt, locale and versions each change the key."""
        base = answer_key(SCOPE, "hi there")
        variants = [AnswerScope("other", "m1", "be brief", "en", "v1"),
                    AnswerScope("acme", "m2", "be brief", "en", "v1"),
                    AnswerScope("acme", "m1", "be long", "en", "v1"),
                    AnswerScope("acme", "m1", "be brief", "fr", "v1"),
                    AnswerScope("acme", "m1", "be brief", "en", "v2")]
        keys = {answer_key(scope, "hi there") for scope in variants}
        assert base not in keys and len(keys) == len(variants)

    def test_key_is_tenant_prefixed_and_short(self) -> None:
        """Keys live under the tenant's prefix and stay far below Workers KV's 512 bytes."""
        key = answer_key(SCOPE, "x" * 10_000)
        assert key.startswith(tenant_prefix("acme")) and len(key.encode()) < 128

    def test_hostile_tenant_ids_are_hashed(self) -> None:
        """A tenant id with a slash cannot escape into another tenant's prefix."""
        prefix = tenant_prefix("acme/../other")
        assert prefix.count("/") == 2 and "acme" not in prefix
