"""The featuriser is deterministic, bounded and shared by both runtimes through the model's metadata."""

from __future__ import annotations

import pytest

from shared.intent.featurise import FeaturiserSettings, featurise, tokens


class TestFeaturise:
    def test_stable_ids(self) -> None:
        """The same text always gives the same bucket ids (CRC-32, not Python's salted hash)."""
        settings = FeaturiserSettings(buckets=1000)
        ids, weights = featurise("What's my balance?", settings)
        expected = [zlib_bucket(gram, 1000) for gram in ("wwhat's", "wmy", "wbalance")]
        assert ids[0] == expected[0] and set(expected) <= set(ids)
        assert all(0 <= i < 1000 for i in ids)
        assert abs(sum(weights) - 1.0) < 1e-9

    def test_cache_does_not_change_ids(self) -> None:
        """Featurising with a cold and a warm word cache gives the same ids."""
        from shared.intent import featurise as module

        settings = FeaturiserSettings(buckets=4096)
        warm = featurise("book a table for two tonight", settings)
        module._word_cache.clear()
        assert featurise("book a table for two tonight", settings) == warm

    def test_settings_do_not_share_cached_words(self) -> None:
        """Two models' settings featurise the same words independently, whichever ran first."""
        from shared.intent import featurise as module

        small, large = FeaturiserSettings(buckets=97), FeaturiserSettings(buckets=1 << 20, char_max=3)
        module._word_cache.clear()
        cold = featurise("reset my password", large)
        featurise("reset my password", small)
        assert featurise("reset my password", large) == cold
        assert all(i < 97 for i in featurise("reset my password", small)[0])

    def test_trigrams(self) -> None:
        """word_ngrams = 3 adds one trigram per three consecutive words, after the bigrams."""
        two = featurise("a b c d", FeaturiserSettings(word_ngrams=2))[0]
        three = featurise("a b c d", FeaturiserSettings(word_ngrams=3))[0]
        assert three[:len(two)] == two and len(three) == len(two) + 2
        assert three[-1] == zlib_bucket("wb c d", FeaturiserSettings().buckets)

    def test_start_mark_adds_n_grams_from_the_start_only(self) -> None:
        """start_mark adds one bigram (and with trigrams one trigram) from a marker before the first word,
        and leaves every other id as it was."""
        plain = featurise("cancel my order", FeaturiserSettings(word_ngrams=3))[0]
        marked = featurise("cancel my order", FeaturiserSettings(word_ngrams=3, start_mark=True))[0]
        buckets = FeaturiserSettings().buckets
        assert sorted(marked) == sorted([*plain, zlib_bucket("w^ cancel", buckets),
                                         zlib_bucket("w^ cancel my", buckets)])
        # A one-word prompt still gets its start bigram; "^" typed by a user is no token, so no clash.
        assert zlib_bucket("w^ hi", buckets) in featurise("hi", FeaturiserSettings(start_mark=True))[0]
        assert featurise("^ hi", FeaturiserSettings(start_mark=True)) == featurise(
            "hi", FeaturiserSettings(start_mark=True))

    def test_empty_text_has_a_padding_feature(self) -> None:
        """Text without words still yields one feature, with weight zero."""
        assert featurise("  ?! ", FeaturiserSettings()) == ([0], [0.0])

    def test_normalises_case_and_width(self) -> None:
        """Case and full-width forms do not change the features."""
        settings = FeaturiserSettings()
        full_width = "\uff29\uff27\uff2e\uff2f\uff32\uff25 previous"  # "IGNORE" in full-width letters
        assert featurise(full_width, settings) == featurise("ignore Previous", settings)

    def test_long_prompts_are_truncated(self) -> None:
        """Only the first max_chars characters are featurised."""
        settings = FeaturiserSettings(max_chars=20)
        assert tokens("a" * 10 + " " + "b" * 100, settings.max_chars) == ["a" * 10, "b" * 9]


class TestSettings:
    def test_round_trip(self) -> None:
        """Settings survive the trip through the model's JSON metadata."""
        settings = FeaturiserSettings(buckets=123, char_max=4)
        assert FeaturiserSettings.from_dict(settings.to_dict()) == settings

    def test_unknown_scheme_is_refused(self) -> None:
        """A model featurised by a different scheme is refused rather than fed wrong ids."""
        data = FeaturiserSettings().to_dict() | {"scheme": "crc32-ngrams-99"}
        with pytest.raises(ValueError, match="scheme"):
            FeaturiserSettings.from_dict(data)

    def test_first_scheme_models_still_load_and_featurise_as_before(self) -> None:
        """A model written before start_mark (scheme 1) loads, with the start marker off; scheme 1 with
        start_mark set is refused (that writer could not have meant it)."""
        old = {"buckets": 19000, "word_ngrams": 2, "char_min": 3, "char_max": 4, "max_chars": 1000,
               "scheme": "crc32-ngrams-1"}
        settings = FeaturiserSettings.from_dict(old)
        assert not settings.start_mark
        assert featurise("where is my order", settings)[0][-1] == zlib_bucket("wmy order", 19000)
        with pytest.raises(ValueError, match="start_mark"):
            FeaturiserSettings.from_dict(old | {"start_mark": True})


def zlib_bucket(gram: str, buckets: int) -> int:
    import zlib

    return zlib.crc32(gram.encode()) % buckets
