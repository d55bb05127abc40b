"""Text to hashed n-gram features, in plain Python so onnxruntime and the interpreter see the same input.

A query becomes a bag of word unigrams, word bigrams and character n-grams of each word (with ``<`` and
``>`` marking its edges, so "in" the word and "in" inside "inside" differ). Each n-gram is hashed with
CRC-32, which is stable across processes and platforms (Python's own ``hash`` is salted per process),
into one of ``buckets`` rows of the model's embedding table. The bag's weights sum to one, so the model
sees the mean of its rows whatever the length of the query.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

SCHEME = "crc32-ngrams-2"  # bump when featurise() changes what it emits
# Schemes this featuriser reproduces exactly: 2 added ``start_mark``, whose default (off) emits what 1 did.
SCHEMES = ("crc32-ngrams-1", SCHEME)
START = "^"  # the start-of-prompt marker in word n-grams; never a token (tokens are \w runs)
_TOKEN = re.compile(r"\w+(?:'\w+)?")


@dataclass(frozen=True, slots=True)
class FeaturiserSettings:
    buckets: int = 1 << 15
    word_ngrams: int = 2  # unigrams up to this length
    char_min: int = 3
    char_max: int = 5
    max_chars: int = 1000  # longer prompts are truncated: featurising costs time at the edge
    # Word n-grams also start at a marker before the first word, so "^ cancel" (a command) and "^ how"
    # (a question about how) are features of their own: where a word stands says what the prompt asks.
    start_mark: bool = False
    scheme: str = SCHEME

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturiserSettings:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        settings = cls(**known)
        if settings.scheme not in SCHEMES:
            raise ValueError(f"featuriser scheme {settings.scheme!r} is not supported (expected one of "
                             f"{list(SCHEMES)}: this eaves is older or newer than the model)")
        if settings.start_mark and settings.scheme == SCHEMES[0]:
            raise ValueError(f"featuriser scheme {SCHEMES[0]!r} has no start_mark")
        s = settings
        if s.buckets < 1 or s.word_ngrams < 1 or not 1 <= s.char_min <= s.char_max:
            raise ValueError(f"featuriser settings out of range: {settings}")
        return settings


def tokens(text: str, max_chars: int = 1000) -> list[str]:
    """Lower-cased word tokens; NFKC folds full-width and compatibility forms attackers use to hide words."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text[:max_chars]).lower())


_CACHE_LIMIT = 50_000  # words per settings; a few MB at most, well inside a Worker's 128 MB
# One dict of words per settings, so a query hashes its (frozen, six-field) settings once, not per word.
_word_cache: dict[FeaturiserSettings, dict[str, list[int]]] = {}


def _word_ids(word: str, settings: FeaturiserSettings, cache: dict[str, list[int]]) -> list[int]:
    """The unigram and character n-gram ids of one word, cached: most words of most queries repeat."""
    buckets = settings.buckets
    crc32 = zlib.crc32
    ids = [crc32(("w" + word).encode()) % buckets]
    marked = "<" + word + ">"
    size = len(marked)
    for n in range(settings.char_min, settings.char_max + 1):
        for i in range(size - n + 1):
            ids.append(crc32(("c" + marked[i:i + n]).encode()) % buckets)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # crude but bounded; the ids never depend on what is cached
    cache[word] = ids
    return ids


def featurise(text: str, settings: FeaturiserSettings) -> tuple[list[int], list[float]]:
    """Return (bucket ids, weights) for ``text``; an empty query yields one padding feature of weight 0.

    Ids come word by word (unigram, then its character n-grams), then the word n-grams from bigrams up.
    """
    words = tokens(text, settings.max_chars)
    if not words:
        return [0], [0.0]
    cache = _word_cache.get(settings)
    if cache is None:
        cache = _word_cache[settings] = {}
    ids: list[int] = []
    for word in words:
        known = cache.get(word)
        ids.extend(known if known is not None else _word_ids(word, settings, cache))
    buckets = settings.buckets
    crc32 = zlib.crc32
    if settings.start_mark:
        words = [START, *words]  # after the unigrams: the marker is no word of its own
    if settings.word_ngrams >= 2:
        for first, second in pairwise(words):  # bigrams, the common case, without slicing and joining
            ids.append(crc32(("w" + first + " " + second).encode()) % buckets)
    for n in range(3, settings.word_ngrams + 1):
        for i in range(len(words) - n + 1):
            ids.append(crc32(("w" + " ".join(words[i:i + n])).encode()) % buckets)
    weight = 1.0 / len(ids)
    return ids, [weight] * len(ids)
