"""Words that tie an answer to the moment it is asked ("now", "today", "latest", "right now").

A cached answer that is about now is wrong an hour later, whatever the model thought the prompt was. The
decision head reads most time-sensitive prompts right, but when it reads one as shareable the answer would
be kept for an hour; a plain word list catches the prompts that say so in as many words, and the policy's
``[freshness]`` rule then caps how long and for whom their answer is kept. The list only ever makes a route
stricter (shorter, narrower), so a word that is there by mistake costs a cache hit, never a wrong answer.

Matching is on whole words, case-insensitive, after folding typographic apostrophes: "Now" and "now?" match
"now", "nowhere" does not; a phrase ("right now") matches its words in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9]+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def words_of(text: str) -> list[str]:
    """The lower-cased alphanumeric words of ``text`` ("Today's" gives "today", "s")."""
    return _WORD.findall(text.translate(_APOSTROPHES).lower())


class NowCues:
    """Finds the first of a set of words and phrases in a prompt."""

    def __init__(self, cues: Iterable[str]) -> None:
        phrases: set[tuple[str, ...]] = set()
        for cue in cues:
            words = tuple(words_of(cue))
            if not words or " ".join(words) != " ".join(cue.lower().split()):
                raise ValueError(f"a cue must be one or more plain words separated by spaces, not {cue!r}")
            phrases.add(words)
        self.phrases = frozenset(phrases)
        self.longest = max((len(p) for p in phrases), default=0)

    def find(self, text: str) -> str | None:
        """The first cue (as written in the list, lower case) that ``text`` contains, or None."""
        if not self.phrases:
            return None
        words = words_of(text)
        for start in range(len(words)):
            for size in range(1, min(self.longest, len(words) - start) + 1):
                window = tuple(words[start:start + size])
                if window in self.phrases:
                    return " ".join(window)
        return None
