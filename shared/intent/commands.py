"""Commands acting on the asker's own things: "Unsave the chicken curry recipe", "Cancel my 3 pm booking".

A prompt that opens with a verb that changes something ("cancel", "delete", "unsave", "reschedule") and then
names what it acts on with "my", "the", "this", "it", "me" and the like is a command on the asker's account,
data, devices, orders or plans: its answer is the asker's, and replaying it from a cache would tell them it
was done when nothing was. The decision head reads nearly all such prompts as personal, but a command about
a topic it has seen in shareable questions ("recipe", "playlist") can read as shareable, and its answer
would then be stored for the whole tenant; the policy's ``[commands]`` rule (``shared.intent.policy``) sends
it to the origin instead. Like ``[records]`` it only ever makes a route stricter, so a false match costs a
cache hit, never someone else's answer.

The match is deliberately narrow, so that shareable requests keep their hits:

- the verb must open the prompt (after a greeting or "please"): "how do I cancel my order?" asks how, and
  its answer is the same for everyone;
- only verbs that change state are listed in the policy, never verbs that ask for content ("write",
  "explain", "show", "translate", "summarise"), whose object is usually the same for everyone ("Explain the
  rules of cricket");
- the next word must point at something particular ("my", "the", "this", "these", "it", "me"): "Remove rust
  from cast iron" and "Delete a git branch" ask how, not for an act.

Only the first few words are read, so a hostile prompt of 16,000 characters costs what a short one does.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.intent.freshness import plain_phrase, words_of

# What may come before the verb without changing what the prompt asks.
_FILLER = ("hi", "hello", "hey", "hiya", "there", "ok", "okay", "so", "um", "please", "pls", "plz", "kindly", "now")
_HEAD = 200  # characters read: the verb and its object are at the start or nowhere
_MAX_FILLER = 4


class CommandCues:
    """Finds a prompt that opens with one of ``verbs`` followed by one of ``objects``; returns "verb object"."""

    def __init__(self, verbs: Iterable[str], objects: Iterable[str]) -> None:
        self.verbs = frozenset(_one_word(verb, "command verb") for verb in verbs)
        self.objects = frozenset(_one_word(word, "command object") for word in objects)
        if self.verbs and not self.objects:
            raise ValueError("objects must name at least one word (\"my\", \"the\", ...)")

    def find(self, text: str) -> str | None:
        if not self.verbs:
            return None
        words = words_of(text[:_HEAD])
        start = 0
        while start < min(len(words), _MAX_FILLER) and words[start] in _FILLER:
            start += 1
        if start + 1 < len(words) and words[start] in self.verbs and words[start + 1] in self.objects:
            return f"{words[start]} {words[start + 1]}"
        return None


def _one_word(raw: str, what: str) -> str:
    words = plain_phrase(raw, what)
    if len(words) != 1 or not words[0].isalpha():
        raise ValueError(f"{what} {raw!r} must be one word of letters")
    return words[0]
