"""Keep the held-out banks held out: drop any question that also appears in the data the shipped intent model
is trained from, before `eaves scenarios` scores it.

The banks were written without looking at that data, but plain questions ("What's today's date?") are
written the same way by anyone, and CLINC150 holds thousands of them. A question the model was trained on
measures memory, not judgement, so it is left out of the figures and the report says how many were.

Two texts are the same question when they agree after NFKC, case folding and dropping everything but letters,
digits and single spaces: "What's my Wi-Fi password?" and "whats my wifi password" are one question, "What is
my wifi password" another. Exact enough to find copies, not paraphrases.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from loadtest.banks import Question

PROJECT = Path(__file__).resolve().parent.parent
TRAINING_DATA = (PROJECT / "shared" / "intent" / "data", PROJECT.parent / "shared" / "data")
_NOT_WORD = re.compile(r"[^\w\s]+")


def same_question_key(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub("", folded).split())


def _texts_in_json(value: Any) -> Iterator[str]:
    """Texts in the shapes the training data uses: ``{"text": ...}`` records and CLINC150's
    ``[text, intent]`` rows, nested in lists and objects."""
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            if isinstance(item, dict | list):
                yield from _texts_in_json(item)
    elif isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, str) for v in value):
            yield value[0]
        else:
            for item in value:
                yield from _texts_in_json(item)


def _read(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8", "replace")


def texts_in_file(path: Path) -> Iterator[str]:
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        for line in _read(path).splitlines():
            if line.strip():
                try:
                    yield from _texts_in_json(json.loads(line))
                except ValueError:
                    continue
    elif name.endswith(".json"):
        try:
            yield from _texts_in_json(json.loads(_read(path)))
        except ValueError:
            return
    elif name.endswith(".csv"):
        for row in csv.DictReader(_read(path).splitlines()):
            if isinstance(row.get("text"), str):
                yield row["text"]


def training_keys(roots: Iterable[Path] = TRAINING_DATA) -> set[str]:
    """The question keys of every text in the training data under ``roots`` (missing roots are skipped)."""
    keys: set[str] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file():
                keys.update(same_question_key(t) for t in texts_in_file(path))
    keys.discard("")
    return keys


def held_out(questions: Iterable[Question], seen: set[str]) -> tuple[list[Question], list[Question]]:
    """(questions the training data does not hold, those it does)."""
    kept: list[Question] = []
    dropped: list[Question] = []
    for q in questions:
        (dropped if same_question_key(q.text) in seen else kept).append(q)
    return kept, dropped
