"""Prompt-injection and abuse examples for training and measuring the edge's block rule.

Attacks come from PyPI's ``bastioncorpus`` (MIT; in the ``train`` extra) plus a few hand-written lines
shipped beside the model (``data/abuse_seed.jsonl``). The corpus's benign rows are false-positive traps
(text that looks like an attack but is not): they are trained as out-of-scope so the model learns that
"ignore the noise in the data" is not an attack. So are hand-written ordinary support and account
questions (``data/benign_seed.jsonl``, some using an attack's words innocently: "can I ignore the reminder
emails?"), so the block rule does not fire on the questions a site's users ask most. One corpus row in
five, chosen by a stable hash of its id, is held out of training so the figures the benchmark prints are
measured on attacks the model never saw.
"""

from __future__ import annotations

import importlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from shared.intent.dataset import OOS, Example

ABUSE_DOMAIN = "abuse"
INJECTION = "prompt_injection"
SEED_FILE = Path(__file__).parent / "data" / "abuse_seed.jsonl"
BENIGN_FILE = Path(__file__).parent / "data" / "benign_seed.jsonl"
_CANARY = "ZX-CANARY-41"  # the corpus's {canary} slot, filled as a probe would


@dataclass(frozen=True, slots=True)
class AbuseSplit:
    train: list[Example]
    heldout_attacks: list[str]
    heldout_benign: list[str]
    all_attacks: list[str]


def is_heldout(row_id: str) -> bool:
    return zlib.crc32(row_id.encode()) % 5 == 0


def load_bastioncorpus() -> AbuseSplit:
    try:
        corpus = importlib.import_module("bastioncorpus")
    except ImportError as exc:
        raise RuntimeError("the abuse corpus needs `pip install bastioncorpus` "
                           "(in eaves' train extra)") from exc
    train: list[Example] = []
    heldout_attacks: list[str] = []
    heldout_benign: list[str] = []
    all_attacks: list[str] = []
    for row in corpus.load_corpus():
        text = row.text.replace("{canary}", _CANARY)
        malicious = row.label == "malicious"
        if malicious:
            all_attacks.append(text)
        if is_heldout(row.id):
            (heldout_attacks if malicious else heldout_benign).append(text)
        else:
            train.append(Example(text, INJECTION if malicious else OOS, ABUSE_DOMAIN if malicious else None))
    return AbuseSplit(train, heldout_attacks, heldout_benign, all_attacks)


def split_bastioncorpus() -> dict[str, list[Example]]:
    """The corpus cut like the rest of the shipped data: held out as ``is_heldout`` (unchanged, so the
    abuse figures stay comparable), a fifth of the rest (by another hash) dev, the remainder train.
    Attacks carry the decision ``abuse``; look-alikes only their intent label ``oos`` (some are personal,
    some shareable)."""
    corpus = importlib.import_module("bastioncorpus")
    parts: dict[str, list[Example]] = {"train": [], "dev": [], "heldout": []}
    for row in corpus.load_corpus():
        text = row.text.replace("{canary}", _CANARY)
        malicious = row.label == "malicious"
        ex = (Example(text, INJECTION, ABUSE_DOMAIN, "abuse") if malicious else Example(text, OOS))
        if is_heldout(row.id):
            part = "heldout"
        else:
            part = "dev" if zlib.crc32(("dev:" + row.id).encode()) % 5 == 0 else "train"
        parts[part].append(ex)
    return parts


def load_seed(path: Path = SEED_FILE) -> list[Example]:
    """The hand-written abuse lines (label, domain and text per JSON line)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            domain = item.get("domain", ABUSE_DOMAIN)
            rows.append(Example(item["text"], item["label"], domain, "abuse" if domain == ABUSE_DOMAIN else None))
    return rows


def load_benign() -> list[Example]:
    """The hand-written ordinary support questions, all out-of-scope (``oos``)."""
    rows = load_seed(BENIGN_FILE)
    if any(row.label != OOS for row in rows):
        raise ValueError(f"{BENIGN_FILE}: every line must have the label {OOS!r}")
    return [Example(row.text, OOS) for row in rows]
