"""What the load test checks in every answer, per label, beyond locust's counts: answers served across users
(the answer names an end user other than the one who asked) and how old time-sensitive answers may get.

The locust process keeps one ``LabelChecks`` per label and writes them as JSON when the test stops
(``EAVES_LOADTEST_CHECKS``); the runner reads them back into the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.answers import MAX_AGE_TARGET_S, Served


@dataclass
class LabelChecks:
    answered: int = 0  # 200s
    from_kv: int = 0
    named: int = 0  # answers that name the end user they were generated for (needs the simulator's echo)
    crossed: int = 0  # answers naming another end user: served across users
    crossed_examples: list[str] = field(default_factory=list)
    max_age_s: int = 0  # oldest Age seen on an answer from the KV
    max_lifetime_s: int = 0  # longest lifetime any kept answer declared (max-age + stale-while-revalidate)
    kept_over_target: int = 0  # answers declaring a lifetime over MAX_AGE_TARGET_S
    kv_without_lifetime: int = 0  # answers from the KV that declared no lifetime at all

    def record(self, served: Served, asker: str, question: str, *, personal: bool = False,
               first_ask: bool = False) -> None:
        """Crossed: the answer names another end user; or, for a personal question, this visitor had never
        asked it and yet it came from the KV without naming them (an entry made for someone else's request:
        the edge sends the origin no end user for answers it shares, so such an answer names nobody)."""
        if served.status != 200:
            return
        self.answered += 1
        if served.user is not None:
            self.named += 1
        crossed = served.user is not None and served.user != asker
        if personal and first_ask and served.from_kv and served.user != asker:
            crossed = True
        if crossed:
            self.crossed += 1
            if len(self.crossed_examples) < 5:
                self.crossed_examples.append(f"{question!r}: asked by {asker}, answer for "
                                             f"{served.user or 'another visitor (shared entry)'}")
        lifetime = served.lifetime_s()
        if lifetime is not None and not served.keeps_nothing():
            self.max_lifetime_s = max(self.max_lifetime_s, lifetime)
            self.kept_over_target += lifetime > MAX_AGE_TARGET_S
        if served.from_kv:
            self.from_kv += 1
            self.max_age_s = max(self.max_age_s, served.age_s or 0)
            if lifetime is None:
                self.kv_without_lifetime += 1


@dataclass
class Checks:
    labels: dict[str, LabelChecks] = field(default_factory=dict)

    def record(self, label: str, served: Served, asker: str, question: str, *, first_ask: bool = False) -> None:
        self.labels.setdefault(label, LabelChecks()).record(served, asker, question, personal=label == "personal",
                                                            first_ask=first_ask)

    def as_dict(self) -> dict[str, Any]:
        return {label: asdict(checks) for label, checks in sorted(self.labels.items())}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict()))

    @classmethod
    def read(cls, path: Path) -> Checks:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls({label: LabelChecks(**values) for label, values in raw.items()})

    @property
    def served_across_users(self) -> int:
        return sum(c.crossed for c in self.labels.values())
