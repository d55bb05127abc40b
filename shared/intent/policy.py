"""The routing policy: a small TOML file mapping intents and domains to what the edge does.

    version = "default-3"          # optional; the file's hash is part of the version either way

    [default]                      # anything no rule below names
    action = "cache"
    ttl_s = 3600
    stale_s = 600

    [domains.abuse]                # every intent of a domain
    action = "block"

    [intents.greeting]             # one intent; wins over its decision and its domain
    action = "edge"
    answer = "Hello! How can I help?"

    [decisions.personal]           # what the model's decision head says a prompt asks of the cache;
    action = "origin"              # wins over the intent's domain

    [decisions.shared]
    action = "cache"
    ttl_s = 86400

    [freshness]                    # a prompt that says "now" in words: never kept longer than this,
    cues = ["now", "today", "right now"]   # whatever the rules above chose (only ever stricter)
    ignore = ["buy now pay later"]         # phrases that contain a cue but are not about now
    action = "cache"
    scope = "user"
    ttl_s = 60

    [records]                      # a prompt naming one of the asker's records ("my booking ABX12",
    nouns = ["order", "booking"]   # "order #4471", an email address): never wider than this rule
    action = "origin"              # (only ever stricter; shared.intent.records says what an identifier is)

    [commands]                     # a prompt that opens with a verb acting on the asker's things
    verbs = ["cancel", "unsave"]   # ("Unsave the chicken curry recipe"): never wider than this rule
    objects = ["my", "the", "it"]  # (only ever stricter; shared.intent.commands says what matches)
    action = "origin"

    [doubt.time_sensitive]         # a reading the decision head is unsure of: when it gives this decision
    at_least = 0.01                # at least this probability, whatever it decided, the answer is kept no
    action = "cache"               # longer than this rule (only ever stricter; the scope stays unless the
                                   # rule narrows it)
    ttl_s = 240
    stale_s = 60
    stale_if_error_s = 0

    [intents.weather]              # per-route origin budget and error window
    action = "cache"
    ttl_s = 300
    stale_if_error_s = 3600
    timeout_s = 2.5

Actions: ``block`` (refuse), ``edge`` (answer with ``answer``), ``cache`` (``ttl_s`` seconds fresh,
``stale_s`` more served stale), ``origin`` (always forward, never cache), ``async`` (hand to the origin
in the background). ``min_confidence`` on a rule makes it apply only when the model is that sure (for a
decision rule, sure of the decision); below it the next rule in line applies: intent, decision, domain,
``[default]``. ``unless_decided`` on an intent rule (a table of decision = confidence) makes it step aside when
the decision head is at least that sure of that decision: the second head overruling the first.

``[records]``, ``[commands]`` and then ``[freshness]`` are checked last. ``[records]``: when the rules chose a
``cache`` route and the prompt names a record (one of its ``nouns`` followed by an identifier, or an email
address), its own route applies instead, held to the stricter of the two field by field. ``[commands]``: the
same when the prompt opens (after a greeting or "please") with one of its ``verbs`` followed by one of its
``objects``. ``[freshness]``: when the rules chose a
``cache`` route and the prompt contains one of its ``cues`` (whole words or phrases, any case;
``shared.intent.freshness``), its own route applies instead, if that keeps the answer for less time or for
fewer people. ``[doubt.NAME]`` tables come after them: when the rules chose a ``cache`` route and the decision
head gave decision NAME at least ``at_least`` (whatever it decided), the route is held to that table's rule
the same way. None of the four may make a route looser, so each must be an ``origin`` rule or
a ``cache`` rule.

Optional keys per rule:

- ``answer`` (string): the ``edge`` rule's canned reply; on other rules, the reply served when the origin
  fails and nothing stale is left.
- ``stale_if_error_s`` (whole seconds >= 0, ``cache`` rules only): how long past ``ttl_s`` a cached answer
  may still be served when the origin fails; without it the edge's ``STALE_IF_ERROR_S`` setting applies.
- ``scope`` (``cache`` rules): who may be served the stored answer: ``"shared"`` (everyone in
  the tenant; the default for ``cache``), ``"user"`` (only the end user who asked; not stored when the edge does
  not know the user) or ``"none"`` (never stored; the default for every other action).
- ``timeout_s`` (seconds > 0, a number, fractions allowed; rules that reach the origin: ``cache``,
  ``origin``, ``async``): how long this route waits for the origin; without it the edge's
  ``ORIGIN_TIMEOUT_S`` setting applies.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from shared.intent.commands import CommandCues
from shared.intent.freshness import NowCues
from shared.intent.records import RecordCues
from shared.intent.routing import ACTIONS, DECISIONS, SCOPES, Action, Intent, Route, Scope

DEFAULT_POLICY = Path(__file__).parent / "data" / "policy.toml"
_RULE_KEYS = frozenset({"action", "ttl_s", "stale_s", "answer", "min_confidence", "stale_if_error_s",
                        "timeout_s", "scope", "unless_decided"})
_ORIGIN_ACTIONS = frozenset({"cache", "origin", "async"})  # the actions that may wait for the origin
_TOP_KEYS = frozenset({"version", "default", "domains", "intents", "decisions", "freshness", "records", "commands",
                       "doubt"})
_SCOPE_WIDTH = {"none": 0, "user": 1, "shared": 2}
_Finder = TypeVar("_Finder", NowCues, RecordCues, CommandCues)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the rule and the problem."""


@dataclass(frozen=True, slots=True)
class Rule:
    route: Route
    min_confidence: float = 0.0
    # decision -> confidence: an intent rule steps aside when the decision head is at least this sure of
    # that decision (a second opinion that overrules the intent head's reading).
    unless_decided: tuple[tuple[str, float], ...] = ()

    def applies(self, confidence: float, intent: Intent) -> bool:
        if confidence < self.min_confidence:
            return False
        return not any(intent.decision == name and intent.decision_confidence >= sure
                       for name, sure in self.unless_decided)


def _rule(where: str, raw: Any, reason: str) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table with an action")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_RULE_KEYS)}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {list(ACTIONS)}, not {action!r}")
    ttl = raw.get("ttl_s")
    stale = raw.get("stale_s", 0)
    answer = raw.get("answer")
    floor = raw.get("min_confidence", 0.0)
    keep = raw.get("stale_if_error_s")
    timeout = raw.get("timeout_s")
    for key, value in (("ttl_s", ttl), ("stale_s", stale), ("stale_if_error_s", keep)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise PolicyError(f"{where}: {key} must be a whole number of seconds >= 0, not {value!r}")
    if action == "cache" and not ttl:
        raise PolicyError(f"{where}: a cache rule needs ttl_s > 0")
    if action != "cache" and (ttl is not None or stale or keep is not None):
        present = [k for k in ("ttl_s", "stale_s", "stale_if_error_s") if k in raw]
        raise PolicyError(f"{where}: {' and '.join(present)} can be set on cache rules only (action is "
                          f"{action!r}); remove them or make the action \"cache\"")
    if timeout is not None:
        if (not isinstance(timeout, int | float) or isinstance(timeout, bool) or not math.isfinite(timeout)
                or timeout <= 0):
            raise PolicyError(f"{where}: timeout_s must be a number of seconds > 0 (e.g. 2.5), not {timeout!r}")
        if action not in _ORIGIN_ACTIONS:
            raise PolicyError(f"{where}: timeout_s applies to rules that reach the origin "
                              f"({', '.join(sorted(_ORIGIN_ACTIONS))}); action {action!r} never does")
    if action == "edge" and (not isinstance(answer, str) or not answer.strip()):
        raise PolicyError(f"{where}: an edge rule needs a non-empty answer")
    if answer is not None and not isinstance(answer, str):
        raise PolicyError(f"{where}: answer must be a string")
    if not isinstance(floor, int | float) or isinstance(floor, bool) or not 0.0 <= floor <= 1.0:
        raise PolicyError(f"{where}: min_confidence must be a number from 0 to 1, not {floor!r}")
    scope = raw.get("scope", "shared" if action == "cache" else "none")
    if scope not in SCOPES:
        raise PolicyError(f"{where}: scope must be one of {list(SCOPES)}, not {scope!r}")
    if action == "cache" and scope == "none":
        raise PolicyError(f"{where}: a cache rule with scope \"none\" keeps nothing; use action \"origin\"")
    if action != "cache" and scope != "none":
        raise PolicyError(f"{where}: scope {scope!r} applies to cache rules only (action is {action!r}); "
                          "nothing else is stored")
    checked: Action = action
    checked_scope: Scope = scope
    route = Route(checked, ttl_s=ttl, stale_s=stale, answer=answer, reason=reason, stale_if_error_s=keep,
                  timeout_s=None if timeout is None else float(timeout), scope=checked_scope)
    return Rule(route, float(floor), _unless_decided(where, raw.get("unless_decided")))


def _unless_decided(where: str, raw: Any) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise PolicyError(f"{where}: unless_decided must be a table of decision = confidence, e.g. "
                          "{ shared = 0.98 }")
    out = []
    for name, sure in raw.items():
        if name not in DECISIONS:
            raise PolicyError(f"{where}: unless_decided names unknown decision {name!r}; the model decides one "
                              f"of {list(DECISIONS)}")
        if not _is_probability(sure):
            raise PolicyError(f"{where}: unless_decided.{name} must be a confidence above 0 and at most 1, "
                              f"not {sure!r}")
        out.append((name, float(sure)))
    return tuple(out)


def _is_probability(value: Any) -> bool:
    """A number above 0 and at most 1 (TOML's true and false are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0


class TomlPolicy:
    """Implements ``shared.intent.routing.RoutePolicy``: intent rule, else domain rule, else default."""

    def __init__(self, text: str, source: str = "<string>") -> None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise PolicyError(f"{source}: unknown section(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
        if "default" not in data:
            raise PolicyError(f"{source}: a [default] rule is required")
        self.source = source
        self.default = _rule(f"{source} [default]", data["default"], "default")
        if self.default.min_confidence:
            raise PolicyError(f"{source} [default]: min_confidence has no meaning on the default rule")
        self.domains = self._section(data, "domains", "domain")
        self.intents = self._section(data, "intents", "intent")
        self.decisions = self._section(data, "decisions", "decision")
        # unless_decided is the decision head overruling the intent head; elsewhere there is nothing to overrule.
        for key, rules in (("default", {"": self.default}), ("domains", self.domains),
                           ("decisions", self.decisions)):
            for name, rule in rules.items():
                if rule.unless_decided:
                    raise PolicyError(f"{source} [{key}{'.' + name if name else ''}]: unless_decided applies to "
                                      "[intents.*] rules only (the decision head overruling the intent head)")
        unknown_decisions = sorted(set(self.decisions) - set(DECISIONS))
        if unknown_decisions:
            raise PolicyError(f"{source}: unknown decision(s) {unknown_decisions}; the model decides one of "
                              f"{list(DECISIONS)}")
        self.cues, self.fresh = self._freshness(data.get("freshness"))
        self.records, self.owned = self._records(data.get("records"))
        self.commands, self.acted_on = self._commands(data.get("commands"))
        self.doubts = self._doubts(data.get("doubt"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        name = data.get("version", "policy")
        if not isinstance(name, str):
            raise PolicyError(f"{source}: version must be a string")
        self.version = f"{name}-{digest}"

    def _section(self, data: dict[str, Any], key: str, kind: str) -> dict[str, Rule]:
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise PolicyError(f"{self.source}: [{key}] must be a table of {kind} rules")
        return {name: _rule(f"{self.source} [{key}.{name}]", raw, f"{kind} {name}")
                for name, raw in table.items()}

    def _freshness(self, raw: Any) -> tuple[NowCues, Route | None]:
        return self._backstop(raw, "freshness", ("cues", "ignore"),
                              lambda words: NowCues(words.get("cues", ()), words.get("ignore", ())))

    def _records(self, raw: Any) -> tuple[RecordCues, Route | None]:
        return self._backstop(raw, "records", ("nouns",), lambda words: RecordCues(words.get("nouns", ())))

    def _commands(self, raw: Any) -> tuple[CommandCues, Route | None]:
        return self._backstop(raw, "commands", ("verbs", "objects"),
                              lambda words: CommandCues(words.get("verbs", ()), words.get("objects", ())))

    def _doubts(self, raw: Any) -> tuple[tuple[str, float, Route], ...]:
        """``[doubt.NAME]``: per decision, the probability from which a reading is unsure of it, and the rule
        such a reading is held to."""
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            raise PolicyError(f"{self.source} [doubt]: expected tables [doubt.DECISION], e.g. "
                              "[doubt.time_sensitive] with at_least = 0.01 and a rule")
        out = []
        for name, table in raw.items():
            where = f"{self.source} [doubt.{name}]"
            if not isinstance(table, dict):
                raise PolicyError(f"{self.source} [doubt]: {name} is not a table; write one table per decision, "
                                  "e.g. [doubt.time_sensitive] with at_least = 0.01 and a rule")
            if name not in DECISIONS:
                raise PolicyError(f"{where}: unknown decision {name!r}; the model decides one of {list(DECISIONS)}")
            if "at_least" not in table:
                raise PolicyError(f"{where}: expected a table with at_least (a probability) and a rule")
            at_least = table["at_least"]
            if not _is_probability(at_least):
                raise PolicyError(f"{where}: at_least must be a probability above 0 and at most 1, not "
                                  f"{at_least!r}")
            out.append((name, float(at_least), _narrowing_rule(where, table, ("at_least",), f"doubt {name}")))
        return tuple(out)

    def _backstop(self, raw: Any, name: str, lists: tuple[str, ...],
                  build: Callable[[dict[str, list[str]]], _Finder]) -> tuple[_Finder, Route | None]:
        """A table that reads the prompt's words: its word lists (the first one required) and the rule it
        holds a route to. Absent, it finds nothing and has no rule."""
        where = f"{self.source} [{name}]"
        if raw is None:
            return build({}), None
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected a table with {lists[0]} and a rule")
        words = {key: _phrases(where, raw, key, required=key == lists[0]) for key in lists}
        try:
            finder = build(words)
        except ValueError as exc:
            raise PolicyError(f"{where}: {exc}") from exc
        return finder, _narrowing_rule(where, raw, lists, name)

    def route(self, intent: Intent, text: str = "") -> Route:
        # An intent rule is the most specific (a canned answer for one intent); then what the prompt asks
        # of the cache (the decision head); then the intent's domain; then the default.
        chosen = self.default.route
        candidates = ((self.intents.get(intent.label), intent.confidence),
                      (self.decisions.get(intent.decision), intent.decision_confidence),
                      (self.domains.get(intent.domain), intent.confidence))
        for rule, confidence in candidates:
            if rule is not None and rule.applies(confidence, intent):
                chosen = rule.route
                break
        # Then the backstops, each only ever narrowing what was chosen, and only looked for when it would: a
        # reference to one of the asker's records, then a command acting on the asker's things, then words
        # about now, then the decision head's own doubt (a reading that gave a costly decision some probability).
        if self.owned is not None and self._narrows(chosen, self.owned) and (record := self.records.find(text)):
            chosen = _held_to(chosen, self.owned, f"record {record!r}")
        if (self.acted_on is not None and self._narrows(chosen, self.acted_on)
                and (command := self.commands.find(text))):
            chosen = _held_to(chosen, self.acted_on, f"command {command!r}")
        if self.fresh is not None and self._narrows(chosen, self.fresh) and (cue := self.cues.find(text)):
            chosen = _held_to(chosen, self.fresh, f"freshness cue {cue!r}")
        for name, at_least, held_to in self.doubts:
            if self._narrows(chosen, held_to) and (p := intent.probability_of(name)) >= at_least:
                chosen = _held_to(chosen, held_to, f"doubt {name} {p:.3f}")
        return chosen

    @classmethod
    def _narrows(cls, chosen: Route, rule: Route) -> bool:
        """Whether holding ``chosen`` to a backstop's ``rule`` would change it (only cache routes keep anything)."""
        return chosen.action == "cache" and cls._looser(chosen, rule)

    @staticmethod
    def _looser(chosen: Route, fresh: Route) -> bool:
        """Whether ``chosen`` keeps an answer longer, or for more people, than ``fresh`` would."""
        if fresh.action == "origin":
            return True
        # stale_if_error_s None means the edge's setting (a day by default): longer than any number here.
        never = math.inf
        kept = ((chosen.ttl_s or 0) + chosen.stale_s,
                never if chosen.stale_if_error_s is None else chosen.stale_if_error_s)
        limit = ((fresh.ttl_s or 0) + fresh.stale_s,
                 never if fresh.stale_if_error_s is None else fresh.stale_if_error_s)
        wider = _SCOPE_WIDTH[chosen.scope] > _SCOPE_WIDTH[fresh.scope]
        return kept[0] > limit[0] or kept[1] > limit[1] or wider


def _phrases(where: str, raw: dict[str, Any], key: str, *, required: bool) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (required and not value):
        needs = "a non-empty list" if required else "a list"
        raise PolicyError(f"{where}: {key} must be {needs} of words or phrases")
    return value


def _narrowing_rule(where: str, raw: dict[str, Any], lists: tuple[str, ...], reason: str) -> Route:
    """The rule of a table that may only make a route stricter: ``cache`` (narrower, shorter) or ``origin``."""
    rule = _rule(where, {k: v for k, v in raw.items() if k not in lists}, reason)
    if rule.route.action not in ("cache", "origin"):
        raise PolicyError(f"{where}: action must be \"cache\" or \"origin\" (it only makes a route "
                          f"stricter), not {rule.route.action!r}")
    if rule.min_confidence or rule.unless_decided:
        key = "min_confidence" if rule.min_confidence else "unless_decided"
        raise PolicyError(f"{where}: {key} has no meaning here (the prompt's words decide)")
    return rule.route


def _held_to(chosen: Route, rule: Route, why: str) -> Route:
    """``chosen`` held to a backstop's ``rule``, its reason saying why."""
    return replace(_stricter(chosen, rule), reason=f"{chosen.reason}; {why}")


def _stricter(chosen: Route, fresh: Route) -> Route:
    """``chosen`` held to the ``[freshness]`` rule, field by field: the shorter lifetime and stale windows, the
    narrower scope (or the origin, if that is the rule). What the rule leaves unset (the origin's timeout, the
    fallback answer) stays the chosen route's, so applying it can never loosen anything."""
    timeout = fresh.timeout_s if fresh.timeout_s is not None else chosen.timeout_s
    answer = fresh.answer if fresh.answer is not None else chosen.answer
    if fresh.action == "origin":
        return replace(fresh, timeout_s=timeout, answer=answer)
    # stale_if_error_s None is the edge's setting (a day by default): the longer of any pair.
    keep = [s for s in (chosen.stale_if_error_s, fresh.stale_if_error_s) if s is not None]
    scope = min(chosen.scope, fresh.scope, key=_SCOPE_WIDTH.__getitem__)
    return replace(chosen, ttl_s=min(t for t in (chosen.ttl_s, fresh.ttl_s) if t is not None),
                   stale_s=min(chosen.stale_s, fresh.stale_s), stale_if_error_s=min(keep) if keep else None,
                   scope=scope, timeout_s=timeout, answer=answer)


def load_policy_file(path: str | Path | None = None) -> TomlPolicy:
    target = Path(path) if path is not None else DEFAULT_POLICY
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {target}: {exc.strerror or exc}") from exc
    return TomlPolicy(text, str(target))
