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
    """Finds the first of a set of words and phrases in a prompt.

    Both lists become one regular expression each, over the prompt's words joined by single spaces: a scan
    in C, once per miss, whatever the prompt's length (a prompt may hold 16,000 characters)."""

    def __init__(self, cues: Iterable[str], ignore: Iterable[str] = ()) -> None:
        # At one position the shortest cue wins ("now" before "now open"), and the leftmost position first.
        phrases = sorted({plain_phrase(cue, "cue") for cue in cues}, key=lambda p: (len(p), p))
        self._cues = _alternation(phrases)
        # Set phrases that contain a cue but say nothing about now ("buy now pay later"): taken out before
        # looking for cues, the longest first, leaving a gap so the words around one never join.
        ignored = sorted({plain_phrase(phrase, "phrase to ignore") for phrase in ignore}, key=lambda p: (-len(p), p))
        self._ignored = _alternation(ignored)

    def find(self, text: str) -> str | None:
        """The first cue (as written in the list, lower case) that ``text`` contains, or None."""
        if self._cues is None:
            return None
        joined = " ".join(words_of(text))
        if self._ignored is not None:
            joined = self._ignored.sub(_GAP, joined)
        found = self._cues.search(joined)
        return found.group(0) if found else None


_GAP = "\x00"  # not a word character, so no cue runs across a phrase taken out


def _alternation(phrases: list[tuple[str, ...]]) -> re.Pattern[str] | None:
    """Whole words only: each phrase starts after a space (or the start) and ends before one (or the end)."""
    if not phrases:
        return None
    return re.compile("(?<![^ ])(?:" + "|".join(re.escape(" ".join(p)) for p in phrases) + ")(?![^ ])")


def plain_phrase(text: str, kind: str) -> tuple[str, ...]:
    """The words of a configured phrase, which must be plain words (``kind`` names it in the error)."""
    words = tuple(words_of(text))
    if not words or " ".join(words) != " ".join(text.lower().split()):
        raise ValueError(f"a {kind} must be one or more plain words separated by spaces, not {text!r}")
    return words
