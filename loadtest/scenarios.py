"""The stack-level evaluation behind `eaves scenarios`: the held-out question banks, asked by two end users of
one tenant against a fresh local stack, scored against issue 16's targets.

For every question (``loadtest/banks``), on a fresh stack with the shipped model and policy:

    user A asks  →  user B of the same tenant asks  →  user A asks again

once for each kind of caller: a website's backend with an API key, naming the end user in the OpenAI
request's ``user`` field, and a browser with a JWT whose ``sub`` is the end user (each kind its own tenant,
so the two never share entries). Fresh questions are asked once, by A.

What is scored, per label:
- ``b_from_edge``: B was answered from the edge's KV (``x-edge-route`` hit or stale). Shareable target ≥ 90 %.
- ``b_served_a``: B got the answer generated for A. Nobody but A asked before B on this fresh stack, so a hit
  for B *is* A's answer, whatever the scope headers say; the simulator also names the user each answer was
  generated for (``origin.generators.simulator.answered_for``), which catches an answer naming anyone else.
  Personal target ≤ 1 %.
- how old a time-sensitive answer may be when served. Three views, all must stay within 300 s: the ``Age``
  seen on answers from the KV; the lifetime responses declare (``Cache-Control`` ``max-age``, plus
  ``stale-while-revalidate`` if declared); and the truth, read from the stack's own KV after the run: each
  entry's deadlines (fresh, stale-while-revalidate, stale-if-error) counted from its creation. The target uses
  the stale-while-revalidate deadline (how old an entry may be served in normal operation); the stale-if-error
  deadline, served only when the origin fails, is reported beside it. Without the KV view (a stack that is not
  ours), an entry served from the KV that declares no lifetime cannot be checked and fails the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edge.jwt import sign_hs256
from loadtest.answers import MAX_AGE_TARGET_S, Served, content_of, served_from_parts
from loadtest.banks import BANK_DIR, LABELS, Question, load_banks
from loadtest.overlap import TRAINING_DATA, held_out, training_keys
from origin.generators.simulator import ANSWER_MARK

CHAT = "/v1/chat/completions"
TARGETS = {  # name: (label, metric, comparison, bound)
    "shareable_b_from_edge": ("shareable", "b_from_edge", ">=", 0.90),  # shares as fractions
    "personal_b_served_a": ("personal", "b_served_a", "<=", 0.01),
    "time_sensitive_max_age_s": ("time_sensitive", "max_lifetime_s", "<=", MAX_AGE_TARGET_S),
}
CALLER_KINDS = ("api_key", "jwt")
TIER = "scenarios"


# ------------------------------------------------------------------------------------------ one question


@dataclass(frozen=True, slots=True)
class Observation:
    """One question asked by A, then B, then A again (fresh questions: by A only)."""

    question: Question
    caller: str
    user_a: str
    user_b: str
    a: Served
    b: Served | None = None
    a_again: Served | None = None

    def b_served_a(self) -> bool:
        """B was given an answer generated for somebody else: a KV hit (only A asked before), or an answer
        that names another user."""
        if self.b is None:
            return False
        return self.b.from_kv or (self.b.user is not None and self.b.user != self.user_b)

    def a_again_served_other(self) -> bool:
        """A's repeat came back with an answer generated for somebody else (B's, if B's was stored)."""
        return self.a_again is not None and self.a_again.user is not None and self.a_again.user != self.user_a

    def answers(self) -> list[Served]:
        return [s for s in (self.a, self.b, self.a_again) if s is not None]


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


@dataclass(frozen=True, slots=True)
class EntryLife:
    """One KV entry's deadlines, in seconds from its creation."""

    fresh_s: float
    stale_s: float  # served (as stale) while one refresh runs, until this
    if_error_s: float  # served only when the origin fails, until this


KVLives = list[tuple[str, EntryLife]]  # (the simulated answer after "Simulated answer to: ", its deadlines)


def lives_for(question: str, kv_lives: KVLives) -> list[EntryLife]:
    """The entries answering ``question``: the simulator writes its first 60 characters and a full stop."""
    head = question.strip()[:60] + "."
    return [life for answered, life in kv_lives if answered.startswith(head)]


def read_kv_lives(kv_path: Path) -> KVLives:
    """Every answer entry in the stack's KV with its deadlines."""
    from shared.kv_lmdb import LmdbKV
    from shared.wire import CachedAnswer

    store = LmdbKV(kv_path)
    lives: KVLives = []
    cursor: str | None = None
    while True:
        page, cursor = store.list(prefix="ans/", cursor=cursor)
        for name, _, _ in page:
            entry = store.get(name)
            cached = CachedAnswer.from_kv(*entry) if entry else None
            content = (content_of(cached.body, streamed=False) if cached else None) or ""
            _, mark, answered = content.partition(ANSWER_MARK + " ")
            if cached and mark:
                lives.append((answered, EntryLife(cached.fresh_until - cached.created,
                                                  cached.stale_until - cached.created,
                                                  cached.keep_until - cached.created)))
        if cursor is None:
            return lives


def summarise_label(observations: Sequence[Observation],
                    kv_lives: KVLives | None = None) -> dict[str, Any]:
    """Per-label figures; every share is over the observations that had that request (None when none did)."""
    asked_b = [o for o in observations if o.b is not None]
    asked_again = [o for o in observations if o.a_again is not None]
    generated = [s for o in observations for s in o.answers() if s.status == 200 and s.route == "miss"]
    summary: dict[str, Any] = {
        "observations": len(observations),
        "a_routes": dict(Counter(o.a.route for o in observations)),
        "b_routes": dict(Counter(o.b.route for o in asked_b if o.b)),
        "b_from_edge": _share(sum(1 for o in asked_b if o.b and o.b.from_kv), len(asked_b)),
        "b_canned": _share(sum(1 for o in asked_b if o.b and o.b.route == "edge"), len(asked_b)),
        "b_served_a": _share(sum(1 for o in asked_b if o.b_served_a()), len(asked_b)),
        "a_repeat_from_edge": _share(sum(1 for o in asked_again if o.a_again and o.a_again.from_kv),
                                     len(asked_again)),
        "a_repeat_served_other": _share(sum(1 for o in asked_again if o.a_again_served_other()), len(asked_again)),
        "blocked": sum(1 for o in observations for s in o.answers() if s.route == "blocked"),
        "errors": sum(1 for o in observations for s in o.answers() if s.status >= 500 or s.status in (400, 401)),
        "scopes": dict(Counter(s.scope or "unsaid" for o in observations for s in o.answers() if s.status == 200)),
        # The cross-user check by content needs the origin to see the end user: this says whether it did.
        "answers_naming_user": _share(sum(1 for s in generated if s.user), len(generated)),
    }
    summary.update(_ages(observations))
    if kv_lives is not None:
        kept = [life for text in {o.question.text for o in observations} for life in lives_for(text, kv_lives)]
        summary["kv_entries"] = len(kept)
        summary["kv_max_lifetime_s"] = round(max((life.stale_s for life in kept), default=0))
        summary["kv_max_if_error_s"] = round(max((life.if_error_s for life in kept), default=0))
        summary["kv_entries_over_target"] = sum(1 for life in kept if life.stale_s > MAX_AGE_TARGET_S)
    return summary


def _ages(observations: Sequence[Observation]) -> dict[str, Any]:
    """How old an answer served from the KV was, and how old the entries kept may get."""
    served = [s for o in observations for s in o.answers() if s.from_kv]
    kept_questions = 0
    lifetimes: list[int] = []
    unverified: list[str] = []
    stale_if_error: list[int] = []
    for o in observations:
        answers = [s for s in o.answers() if s.status == 200]
        declared = [life for s in answers if (life := s.lifetime_s()) is not None and not s.keeps_nothing()]
        served_here = any(s.from_kv for s in answers)
        if declared or served_here:
            kept_questions += 1
        if declared:
            lifetimes.append(max(declared))
        elif served_here:
            unverified.append(o.question.text)
        stale_if_error += [v for s in answers if (v := s.stale_if_error_s()) is not None]
    ages = [s.age_s for s in served if s.age_s is not None]
    max_lifetime: int | None = max(lifetimes) if lifetimes else 0
    if unverified:
        max_lifetime = None  # something was served whose lifetime nobody declared: cannot be vouched for
    return {
        "served_from_kv": len(served),
        "questions_kept": kept_questions,
        "max_age_seen_s": max(ages) if ages else None,
        "max_lifetime_s": max_lifetime,
        "over_target": sum(1 for life in lifetimes if life > MAX_AGE_TARGET_S),
        "lifetime_undeclared": len(unverified),
        "max_stale_if_error_s": max(stale_if_error) if stale_if_error else None,
    }


def summarise(observations: Sequence[Observation],
              kv_lives: KVLives | None = None) -> dict[str, Any]:
    by_label: dict[str, list[Observation]] = {label: [] for label in LABELS}
    for o in observations:
        by_label[o.question.label].append(o)
    labels = {label: summarise_label(obs, kv_lives) for label, obs in by_label.items() if obs}
    return {"labels": labels, "targets": check_targets(labels), "examples": _examples(by_label)}


def check_targets(labels: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    results = {}
    for name, (label, metric, comparison, bound) in TARGETS.items():
        figures = labels.get(label, {})
        value = figures.get(metric)
        if label == "time_sensitive" and figures:
            value = _oldest(figures)
        met = value is not None and (value >= bound if comparison == ">=" else value <= bound)
        results[name] = {"label": label, "metric": metric, "value": value, "target": f"{comparison} {bound}",
                         "met": met}
    return results


def _oldest(figures: dict[str, Any]) -> int | None:
    """The oldest a time-sensitive answer may be served at: the largest of what was seen, what responses
    declare and what the KV holds; None when something was served that nobody can vouch for."""
    seen = int(figures.get("max_age_seen_s") or 0)
    if "kv_max_lifetime_s" in figures:  # the truth: undeclared headers do not matter then
        return max(seen, int(figures["kv_max_lifetime_s"]), int(figures.get("max_lifetime_s") or 0))
    declared = figures.get("max_lifetime_s")
    return None if declared is None else max(seen, int(declared))


def _examples(by_label: dict[str, list[Observation]], limit: int = 8) -> dict[str, list[str]]:
    """The questions behind a missed target, a few each, so a reader can see what went wrong."""
    return {
        "shareable_b_not_from_edge": [f"{o.question.text} [{o.b.route}]" for o in by_label["shareable"]
                                      if o.b and not o.b.from_kv][:limit],
        "personal_b_served_a": [o.question.text for o in by_label["personal"] if o.b_served_a()][:limit],
        "time_sensitive_kept_over_target": [
            o.question.text for o in by_label["time_sensitive"]
            if any((life := s.lifetime_s()) is not None and life > MAX_AGE_TARGET_S and not s.keeps_nothing()
                   for s in o.answers())
            or (any(s.from_kv for s in o.answers()) and all(s.lifetime_s() is None for s in o.answers()))][:limit],
    }


# --------------------------------------------------------------------------------------------- callers


@dataclass(frozen=True, slots=True)
class Caller:
    """How one kind of client names its end user: the request's ``user`` field (API key), or ``sub`` (JWT)."""

    kind: str
    tenant: str
    api_key: str | None = None
    jwt_secret: str | None = None

    def request(self, text: str, user: str) -> tuple[dict[str, str], dict[str, Any]]:
        body: dict[str, Any] = {"model": "eaves-default", "messages": [{"role": "user", "content": text}]}
        if self.kind == "api_key":
            body["user"] = user
            return {"authorization": f"Bearer {self.api_key}"}, body
        now = int(time.time())
        token = sign_hs256({"sub": user, "tenant": self.tenant, "tier": TIER, "iat": now, "exp": now + 3600},
                           self.jwt_secret or "")
        return {"authorization": f"Bearer {token}"}, body


def served_from(response: httpx.Response) -> Served:
    return served_from_parts(response.status_code, response.headers, content_of(response.content, streamed=False))


async def ask(client: httpx.AsyncClient, caller: Caller, text: str, user: str) -> Served:
    headers, body = caller.request(text, user)
    return served_from(await client.post(CHAT, json=body, headers=headers))


async def observe(client: httpx.AsyncClient, caller: Caller, question: Question, index: int) -> Observation:
    user_a, user_b = f"visitor-{index}-a", f"visitor-{index}-b"
    a = await ask(client, caller, question.text, user_a)
    if question.label == "fresh":
        return Observation(question, caller.kind, user_a, user_b, a)
    b = await ask(client, caller, question.text, user_b)
    a_again = await ask(client, caller, question.text, user_a)
    return Observation(question, caller.kind, user_a, user_b, a, b, a_again)


async def evaluate(url: str, callers: Sequence[Caller], questions: Sequence[Question],
                   concurrency: int = 4) -> list[Observation]:
    """Each question through each caller; questions run ``concurrency`` at a time, each one's three requests
    in order."""
    gate = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def one(caller: Caller, question: Question, index: int) -> Observation:
            async with gate:
                return await observe(client, caller, question, index)

        return list(await asyncio.gather(*(one(caller, q, i) for caller in callers
                                           for i, q in enumerate(questions))))


# ------------------------------------------------------------------------------------------ the stack


@dataclass
class ScenarioConfig:
    bank_dir: Path = BANK_DIR
    sample: int | None = None  # questions per label (a seeded sample); None: all of them
    seed: int = 16
    callers: tuple[str, ...] = CALLER_KINDS
    concurrency: int = 4
    runtime: str = "cpython"
    data_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Leave out questions the intent model's training data also holds (loadtest/overlap.py); None: keep all.
    training_data: tuple[Path, ...] | None = TRAINING_DATA


def pick(banks: dict[str, list[Question]], sample: int | None, seed: int) -> list[Question]:
    rng = random.Random(seed)
    chosen: list[Question] = []
    for label in LABELS:
        bank = banks.get(label, [])
        chosen += bank if sample is None or sample >= len(bank) else rng.sample(bank, sample)
    return chosen


def stack_env(jwt_secret: str) -> dict[str, str]:
    jwt = {"keys": [{"alg": "HS256", "secret": jwt_secret}], "tenant_claim": "tenant", "tier_claim": "tier"}
    return {"EAVES_TIERS": json.dumps({TIER: {"limit": 10**7, "window_s": 60}}), "EAVES_JWT": json.dumps(jwt),
            "EAVES_SIM_ECHO_TENANT": "1", "EAVES_SIM_TTFT_MS": "5", "EAVES_SIM_TOKENS_PER_S": "5000",
            "EAVES_LOG": "off"}


@contextlib.contextmanager
def scenario_stack(config: ScenarioConfig) -> Iterator[tuple[str, list[Caller], Path]]:
    """A fresh stack on 127.0.0.1 (simulator origin, shipped model and policy), one caller per kind and the
    path of its KV."""
    from eaves.stack import running_stack
    from loadtest.run import create_key
    from shared.local_stack import LocalStack

    with contextlib.ExitStack() as stack:
        data_dir = config.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eaves-scen-")))
        jwt_secret = secrets.token_urlsafe(32)
        callers = []
        for kind in config.callers:
            tenant = f"scenarios-{kind.replace('_', '-')}"
            if kind == "api_key":
                callers.append(Caller(kind, tenant, api_key=create_key(data_dir, tenant, TIER)))
            else:
                callers.append(Caller(kind, tenant, jwt_secret=jwt_secret))
        running = stack.enter_context(running_stack(data_dir, env={**stack_env(jwt_secret), **config.extra_env},
                                                    edge_args=["--runtime", config.runtime]))
        assert running.edge is not None
        yield running.edge.url, callers, LocalStack(data_dir).kv_path


def run_scenarios(config: ScenarioConfig) -> dict[str, Any]:
    banks = load_banks(config.bank_dir)
    excluded: dict[str, int] = {}
    if config.training_data is not None:
        seen = training_keys(config.training_data)
        for label, bank in banks.items():
            banks[label], dropped = held_out(bank, seen)
            excluded[label] = len(dropped)
    questions = pick(banks, config.sample, config.seed)
    started = time.monotonic()
    with scenario_stack(config) as (url, callers, kv_path):
        observations = asyncio.run(evaluate(url, callers, questions, config.concurrency))
        kv_lives = read_kv_lives(kv_path)
    report = summarise(observations, kv_lives)
    report["run"] = {"questions": len(questions), "callers": list(config.callers), "requests":
                     sum(len(o.answers()) for o in observations), "seconds": round(time.monotonic() - started, 1),
                     "runtime": config.runtime, "sample_per_label": config.sample, "seed": config.seed,
                     "excluded_seen_in_training": excluded}
    report["by_caller"] = {kind: summarise([o for o in observations if o.caller == kind], kv_lives)["labels"]
                           for kind in config.callers}
    return report




# ------------------------------------------------------------------------------------------ rendering


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [f"eaves scenarios: {run['questions']} questions x callers {', '.join(run['callers'])}, "
             f"{run['requests']} requests in {run['seconds']}s (edge runtime {run['runtime']})",
             *([f"left out, also in the intent model's training data: "
                f"{', '.join(f'{k} {v}' for k, v in run['excluded_seen_in_training'].items())}"]
               if any(run.get("excluded_seen_in_training", {}).values()) else []),
             f"| {'label':<15} | {'asked':>5} | {'B from edge':>11} | {'B got A':>7} | {'A again hit':>11} | "
             f"{'canned':>6} | {'blocked':>7} | {'age seen / lifetime / if error, s':>33} |",
             f"|{'-' * 17}|{'-' * 7}|{'-' * 13}|{'-' * 9}|{'-' * 13}|{'-' * 8}|{'-' * 9}|{'-' * 35}|"]
    for label, s in report["labels"].items():
        lifetime = s.get("kv_max_lifetime_s", s["max_lifetime_s"])
        ages = (f"{s['max_age_seen_s'] or 0} / {'undeclared' if lifetime is None else lifetime} / "
                f"{s.get('kv_max_if_error_s', '?')}")
        lines.append(f"| {label:<15} | {s['observations']:>5} | {_pct(s['b_from_edge']):>11} | "
                     f"{_pct(s['b_served_a']):>7} | {_pct(s['a_repeat_from_edge']):>11} | {_pct(s['b_canned']):>6} | "
                     f"{s['blocked']:>7} | {ages:>33} |")
    lines.append("targets:")
    for name, t in report["targets"].items():
        value = t["value"]
        shown = "undeclared" if value is None else (f"{value:.1%}" if isinstance(value, float) else f"{value} s")
        comparison, number = t["target"].split()
        bound = f"{comparison} {float(number):.0%}" if "." in number else f"{comparison} {number} s"
        lines.append(f"  {'met    ' if t['met'] else 'NOT met'} {name}: {shown} (target {bound})")
    for label, figures in report["labels"].items():
        if figures.get("a_repeat_served_other"):
            share = figures["a_repeat_served_other"]
            lines.append(f"  {label}: A's repeat was given another user's answer {share:.1%} of the time")
    ts = report["labels"].get("time_sensitive", {})
    if ts.get("kv_entries_over_target"):
        lines.append(f"  time_sensitive: {ts['kv_entries_over_target']} of {ts['kv_entries']} KV entries may be served "
                     f"more than {MAX_AGE_TARGET_S} s after they were made")
    if ts.get("kv_max_if_error_s"):
        lines.append(f"  (time-sensitive entries may also be served up to {ts['kv_max_if_error_s']} s old when the "
                     "origin fails: stale-if-error)")
    naming = [s["answers_naming_user"] for s in report["labels"].values() if s["answers_naming_user"] is not None]
    if naming and max(naming) == 0:
        lines.append("note: no generated answer named its end user (the origin was not told who asked); a B answered "
                     "from the KV is still counted as served A's answer")
    return "\n".join(lines)
