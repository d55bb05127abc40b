"""References to one of the asker's records: "order 77812", "booking ABX12", "claim CLM-2291", an email address.

A prompt that names a particular order, booking, ticket, claim or account is about that record, and a record
has an owner: its answer ("Can I upgrade my booking ABX12?", "change the name on order 77812") is the
asker's, however FAQ-like the sentence around it reads. The decision head reads most such prompts as
personal, but when it reads one as shareable the answer would be stored for the whole tenant; the policy's
``[records]`` rule (``shared.intent.policy``) then sends it to the origin instead. Like ``[freshness]`` it only
ever makes a route stricter, so a false match costs a cache hit, never someone else's answer.

What counts as a reference is deliberately narrow, so that shareable questions keep their cache hits:

- a record noun from the policy's list ("order", "booking", "claim", ...), then optionally "number", "no.",
  "#", "ref", "id", "code" or "ending in", then an identifier: letters and digits with at least one of each
  and four or more characters ("ABX12", "CLM-2291", "KD93L"), or digits alone. Digits alone are a quantity as
  often as a reference ("order 500 flyers", "the 2024 policy"), so they count only with five or more digits,
  or with three or more when the prompt marks them as an identifier ("#4471", "order number 447", "my order
  4471");
- an email address anywhere (an address belongs to someone).

Units and ordinals ("128GB", "100ml", "the 14th") never follow a record noun directly as identifiers here
unless they mix letters into digits the way codes do, and a flight number is not a record of the asker's
("Is flight BA117 on time?" is the same for everyone), so "flight" is not in the shipped noun list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shared.intent.freshness import plain_phrase

# Marks that say the token after them is an identifier, not a quantity.
_MARKS = r"(?:number|no\.?|num|nr|id|code|ref|reference|ending in|ending|ends in)"
_MAX_TOKEN = 40     # identifiers are short: a longer run of letters and digits is not one
_WINDOW = 120       # how far before an identifier its noun may start ("my gift card number ending in ")
_MAX_CANDIDATES = 32
_MAX_ATS = 16
# A prompt may hold 16,000 characters; the scan looks only where a digit is (most prompts have none), and the
# bounds above keep a hostile prompt ("1 1 1 ...", "@@@@") to a fraction of a millisecond. Past them the
# decision head alone decides, as it would without this rule.
_DIGIT = re.compile(r"\d")
_TOKEN_START = re.compile(rf"[a-z0-9-]{{0,{_MAX_TOKEN}}}\Z", re.IGNORECASE)
_TOKEN_REST = re.compile(rf"[a-z0-9-]{{0,{_MAX_TOKEN}}}", re.IGNORECASE)
_AMOUNT = re.compile(r"\d+[a-z]{1,3}", re.IGNORECASE)
_LOCAL_PART = re.compile(r"[a-z0-9._%+-]{1,64}\Z", re.IGNORECASE)
_DOMAIN = re.compile(r"[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,8}", re.IGNORECASE)


class RecordCues:
    """Finds the first reference to a record (one of ``nouns`` followed by an identifier) or email address."""

    def __init__(self, nouns: Iterable[str]) -> None:
        phrases = sorted({" ".join(plain_phrase(noun, "record noun")) for noun in nouns}, key=lambda n: (-len(n), n))
        self._before: re.Pattern[str] | None = None
        if phrases:
            alternation = "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
            # What may stand right before an identifier: up to three nouns in a row read as one ("ticket
            # order 77812", "gift card 4421"), an owner, a mark, then "is", ":", "#" or "№".
            self._before = re.compile(
                rf"\b(?P<owner>(?:my|our|your)\s+)?(?:(?:{alternation})\s+){{0,2}}(?:{alternation})"
                rf"(?:\s+(?P<mark>{_MARKS}))?(?P<tail>(?:\s*(?:[:#\u2116]|\bis\b))*)\s*\Z",
                re.IGNORECASE)

    def find(self, text: str) -> str | None:
        """The reference found ("order 77812", an email address) as written in ``text``, or None."""
        if self._before is not None:
            pos = 0
            for _ in range(_MAX_CANDIDATES):
                digit = _DIGIT.search(text, pos)
                if digit is None:
                    break
                token_start = _TOKEN_START.search(text, max(0, digit.start() - _MAX_TOKEN), digit.start())
                start = digit.start() if token_start is None else token_start.start()
                end = _TOKEN_REST.match(text, digit.end()).end()  # type: ignore[union-attr]  # {0,n} always matches
                pos = end
                token = text[start:end].strip("-")
                if not token or text[start:start + 1] == "-" or len(token) > _MAX_TOKEN:
                    continue
                before = self._before.search(text, max(0, start - _WINDOW), start)
                if before is None:
                    continue
                marked = bool(before.group("owner") or before.group("mark") or "#" in before.group("tail")
                              or "\u2116" in before.group("tail"))
                if _is_identifier(token, marked):
                    return " ".join(text[before.start():end].split())
        return _email(text)


def _email(text: str) -> str | None:
    """The first email address in ``text``, found from its "@" outwards (at most ``_MAX_ATS`` of them)."""
    at = text.find("@")
    for _ in range(_MAX_ATS):
        if at < 0:
            return None
        local = _LOCAL_PART.search(text, max(0, at - 64), at)
        domain = _DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            return text[local.start():domain.end()]
        at = text.find("@", at + 1)
    return None


def _is_identifier(token: str, marked: bool) -> bool:
    digits = sum(ch.isdigit() for ch in token)
    if digits == sum(ch.isalnum() for ch in token):  # digits only (hyphens allowed): a quantity or a reference
        return digits >= 5 or (marked and digits >= 3)
    if _AMOUNT.fullmatch(token):  # "100ml", "128GB", "14th", "10am": a number with its unit
        return False
    return len(token.replace("-", "")) >= 4
