"""The held-out question banks (``loadtest/banks/*.jsonl``): what a website's visitors ask, labelled by what
the edge should do with it. How they were written, and why no model or policy may learn from them:
``loadtest/README.md``.

Labels:
    shareable       the same answer for every visitor: site FAQ, how-to, general knowledge, recipes, writing
    personal        about the asker's own account, data, devices, orders or plans, or a command acting on them
    time_sensitive  about now: weather, prices, scores, status, queues, "latest"
    small_talk      greetings, thanks, chit-chat
    fresh           shareable questions asked once (the long tail: every one costs an origin call)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BANK_DIR = Path(__file__).with_name("banks")
LABELS = ("shareable", "personal", "time_sensitive", "small_talk", "fresh")


class BankError(ValueError):
    """A bank file is malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    label: str


def parse_bank(lines: list[str], source: str = "<bank>") -> list[Question]:
    """One ``{"text", "label"}`` object per line; blank lines are skipped, anything else is an error."""
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BankError(f"{source}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise BankError(f"{source}:{number}: expected an object with 'text' and 'label'")
        text, label = record.get("text"), record.get("label")
        if not isinstance(text, str) or not text.strip():
            raise BankError(f"{source}:{number}: 'text' must be a non-empty string")
        if label not in LABELS:
            raise BankError(f"{source}:{number}: 'label' must be one of {', '.join(LABELS)}, not {label!r}")
        questions.append(Question(text, label))
    return questions


def load_banks(directory: Path = BANK_DIR) -> dict[str, list[Question]]:
    """Every ``*.jsonl`` file under ``directory``, grouped by label (each label present, maybe empty)."""
    banks: dict[str, list[Question]] = {label: [] for label in LABELS}
    paths = sorted(directory.glob("*.jsonl"))
    if not paths:
        raise BankError(f"no *.jsonl question banks in {directory}")
    for path in paths:
        for question in parse_bank(path.read_text(encoding="utf-8").splitlines(), str(path)):
            banks[question.label].append(question)
    return banks


def texts(label: str, directory: Path = BANK_DIR) -> list[str]:
    return [q.text for q in load_banks(directory)[label]]
