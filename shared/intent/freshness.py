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

    def __init__(self, cues: Iterable[str], ignore: Iterable[str] = ()) -> None:
        self.phrases = frozenset(_phrase(cue, "cue") for cue in cues)
        self.longest = max((len(p) for p in self.phrases), default=0)
        # Set phrases that contain a cue but say nothing about now ("buy now pay later"): their words are
        # skipped before looking for cues.
        self.ignored = tuple(sorted({_phrase(phrase, "phrase to ignore") for phrase in ignore}, key=len,
                                    reverse=True))

    def find(self, text: str) -> str | None:
        """The first cue (as written in the list, lower case) that ``text`` contains, or None."""
        if not self.phrases:
            return None
        words = words_of(text)
        if self.ignored:
            words = _without(words, self.ignored)
        for start in range(len(words)):
            for size in range(1, min(self.longest, len(words) - start) + 1):
                window = tuple(words[start:start + size])
                if window in self.phrases:
                    return " ".join(window)
        return None


def _phrase(text: str, kind: str) -> tuple[str, ...]:
    words = tuple(words_of(text))
    if not words or " ".join(words) != " ".join(text.lower().split()):
        raise ValueError(f"a {kind} must be one or more plain words separated by spaces, not {text!r}")
    return words


def _without(words: list[str], phrases: tuple[tuple[str, ...], ...]) -> list[str]:
    """``words`` with every occurrence of each phrase taken out (longest phrases first); a gap is left
    where one was, so the words on either side of it do not join into a phrase."""
    kept: list[str] = []
    at = 0
    while at < len(words):
        for phrase in phrases:
            if tuple(words[at:at + len(phrase)]) == phrase:
                kept.append("")
                at += len(phrase)
                break
        else:
            kept.append(words[at])
            at += 1
    return kept
