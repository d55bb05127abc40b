"""The shipped model's training data, all in the repository, cut into train, dev and held-out parts.

Sources (licences in ``data/ATTRIBUTION.md``):

- CLINC150 (``data/clinc150/train_val.json.gz``): 150 intents; each intent's decision comes from the
  reviewed table ``data/clinc150_decisions.csv``. Its out-of-scope rows carry no decision: "out of
  CLINC's intents" says nothing about whether an answer may be shared.
- ``data/website_prompts.jsonl``, ``data/website_prompts_2.jsonl`` and the later files in ``LATER_WEBSITE``
  (``website_prompts_3``/``_4``/``_5``/``_6`` and ``website_prompts_banks1`` to ``_banks4``, the load test's
  first four question banks, each scored once):
  questions written for eaves the way a website's visitors ask them, each with its decision (shared,
  personal, time_sensitive, small_talk).
- bastioncorpus (PyPI) attacks, decision ``abuse``, and its benign look-alikes; plus ``abuse_seed.jsonl``
  and ``benign_seed.jsonl`` (trained only, never scored).

Parts: ``train`` fits the weights; ``dev`` is where every choice (settings, thresholds, floors, weights,
the policy) is made; ``heldout`` is scored once, at the end, for the figures the README reports. A tenth of
CLINC150's ``train`` split is dev. Its ``val`` split was the held-out part for seven models; having judged
them all, and steered how the seventh's threshold was set, it trains now (``clinc_val``), and CLINC150's
test split, which is not in the repository and which no choice here saw, is the held-out judge
(shared/intent/README.md). Website prompts and
bastioncorpus rows are assigned by a stable hash of their text or id, so a new prompt never moves others.
The first website file's held-out fifth was scored and then read to decide what to change, so it is dev now;
the second file's held-out quarter (``part_of_2``, a differently salted hash) was scored once too, so it is
train and dev now (``website2_part``). The later files have no held-out cut: a separate sealed set, which
no choice here sees, is the website held-out part now (shared/intent/README.md).
"""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from shared.intent.dataset import NO_LABEL, OOS, DatasetError, Example, load_domains, load_examples
from shared.intent.routing import ANSWER_DECISIONS, DECISIONS

DATA = Path(__file__).parent / "data"
CLINC = DATA / "clinc150" / "train_val.json.gz"
CLINC_DOMAINS = DATA / "clinc150" / "domains.json"
DECISION_TABLE = DATA / "clinc150_decisions.csv"
WEBSITE = DATA / "website_prompts.jsonl"
WEBSITE_2 = DATA / "website_prompts_2.jsonl"
# Written later, each cut into train and dev only, by a hash salted with its own name (``later_part``).
# A file not (yet) in the repository is skipped.
LATER_WEBSITE = ("website_prompts_banks1", "website_prompts_3", "website_prompts_4", "website_prompts_banks2",
                 "website_prompts_5", "website_prompts_banks3", "website_prompts_6", "website_prompts_banks4")
PARTS = ("train", "dev", "heldout")
CLINC_VAL = ("train", "heldout", "half1", "half2")
# CLINC150's domains whose intents are acts of the conversation itself, not tasks: greetings, thanks,
# questions about the assistant (small_talk) and replies and commands on the session (meta: yes, no,
# repeat, cancel, change_volume, ...). The abuse labels are kept beside them.
ACT_DOMAINS = ("small_talk", "meta")
_KEPT_DOMAINS = frozenset((*ACT_DOMAINS, "abuse"))


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" ?!.")


def part_of(key: str) -> str:
    """A stable part for a row outside CLINC150: a fifth held out, a fifth dev, the rest train."""
    bucket = zlib.crc32(key.encode()) % 5
    return "heldout" if bucket == 0 else "dev" if bucket == 1 else "train"


def part_of_2(key: str) -> str:
    """The part of a prompt in the second website file: a quarter held out, a tenth dev, the rest train.

    Salted, so it is a fresh cut, not the first file's: this held-out part was cut before any model or
    setting was tried on the file and is scored once, at the end (shared/intent/README.md)."""
    bucket = zlib.crc32(("intent2:" + _norm(key)).encode()) % 20
    return "heldout" if bucket < 5 else "dev" if bucket < 7 else "train"


def website2_part(key: str) -> str:
    """The second file's part now: its held-out quarter was scored once (the second model's figures) and
    its errors read, so 2 in 5 of it are dev and the rest train; its train and dev rows stay where they were."""
    bucket = zlib.crc32(("intent2:" + _norm(key)).encode()) % 20
    if bucket < 5:
        return "dev" if bucket < 2 else "train"
    return "dev" if bucket < 7 else "train"


def later_part(name: str, key: str) -> str:
    """The part of a prompt in a later website file: a fifth dev, the rest train (no held-out cut)."""
    return "dev" if zlib.crc32(f"{name}:{_norm(key)}".encode()) % 5 == 0 else "train"


def decision_table(path: Path = DECISION_TABLE) -> dict[str, str]:
    """intent -> decision from the reviewed table (every row needs a known decision and a reason)."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            if row.get("decision") not in DECISIONS or not (row.get("reason") or "").strip():
                raise DatasetError(f"{path}:{number}: needs a decision in {list(DECISIONS)} and a reason")
            out[row["intent"]] = row["decision"]
    return out


@dataclass(slots=True)
class Corpus:
    parts: dict[str, list[Example]] = field(default_factory=lambda: {name: [] for name in PARTS})
    # Per source and part, for reports: "clinc", "website", "abuse".
    sources: dict[str, dict[str, list[Example]]] = field(default_factory=dict)

    def add(self, source: str, part: str, rows: list[Example]) -> None:
        self.parts[part].extend(rows)
        self.sources.setdefault(source, {name: [] for name in PARTS})[part].extend(rows)


def clinc_rows(split: str, decisions: dict[str, str], domains: dict[str, str],
               path: Path = CLINC) -> list[Example]:
    rows = load_examples(f"{path}#{split}")
    return [Example(ex.text, ex.label, domains.get(ex.label), None if ex.label == OOS else decisions[ex.label])
            for ex in rows]


def website_rows(path: Path = WEBSITE) -> list[Example]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            item = json.loads(line)
            if item.get("decision") not in DECISIONS:
                raise DatasetError(f"{path}:{number}: decision must be one of {list(DECISIONS)}")
            rows.append(Example(item["text"], NO_LABEL, None, item["decision"]))
    return rows


def as_acts(rows: list[Example]) -> list[Example]:
    """The rows relabelled for an intent head of conversation acts (``--intents acts``).

    A website's policy routes on the intent head for what the decision head cannot say: a canned answer
    for a greeting or "are you a bot", "yes"/"cancel" whose meaning is the asker's conversation, and
    abuse. Which of CLINC150's 120 task intents a question is ("pay_bill" or "bill_due") decides nothing
    there, so they, CLINC150's out-of-scope rows and the website prompts that ask for an answer all become
    ``oos`` ("no act"); the website prompts, most of what a site sees, then teach the head what an
    ordinary question is, which the CLINC150 head never learnt (it read "I love this assistant" as an
    attack). Acts and abuse labels keep their names; rows without a label keep none."""
    out = []
    for ex in rows:
        if ex.label == NO_LABEL:
            # A website prompt that asks for an answer is no act; small talk is an act whose name the file
            # does not give, so it teaches the intent head nothing.
            if ex.decision in ANSWER_DECISIONS:
                ex = Example(ex.text, OOS, None, ex.decision)
        elif ex.label != OOS and ex.domain not in _KEPT_DOMAINS:
            ex = Example(ex.text, OOS, None, ex.decision)
        out.append(ex)
    return out


def val_half(text: str) -> int:
    """1 or 2: the half of CLINC150's val split a row falls in, by a stable hash of its normalised text."""
    return 1 + zlib.crc32(("clinc-val:" + _norm(text)).encode()) % 2


def clinc_val_part(text: str, clinc_val: str) -> str:
    """Where a row of CLINC150's val split goes: ``train`` (all of it trains: the shipped model),
    ``heldout`` (none does: the seventh model's cut), or ``half1``/``half2`` (that half is held out and the
    other trains: how the shipped threshold was cross-fitted, shared/intent/README.md)."""
    if clinc_val in ("train", "heldout"):
        return clinc_val
    if clinc_val in ("half1", "half2"):
        return "heldout" if val_half(text) == int(clinc_val[-1]) else "train"
    raise ValueError(f"clinc_val must be one of {list(CLINC_VAL)}, not {clinc_val!r}")


def load_corpus(abuse: bool = True, clinc: Path = CLINC, website_2: Path = WEBSITE_2,
                clinc_val: str = "train") -> Corpus:
    """Every source, cut into parts. ``abuse=False`` leaves out bastioncorpus (tests, no extra installed);
    ``clinc_val`` says where CLINC150's val split goes (``clinc_val_part``)."""
    corpus = Corpus()
    decisions = decision_table()
    domains = load_domains(CLINC_DOMAINS)
    for split, is_oos in (("train", False), ("oos_train", True)):
        rows = clinc_rows(split, decisions, domains, clinc)
        for ex in rows:
            # A tenth of CLINC150's train split is dev, by hash (about 10 rows per intent, 10 oos rows).
            # Hashed on the normalised text, so repeated rows ("thank you", "Thank you!") share a part.
            bucket = zlib.crc32(_norm(ex.text).encode())
            dev = bucket % 10 == 0 if not is_oos else bucket % 3 == 0
            corpus.add("clinc", "dev" if dev else "train", [ex])
    # A val row that repeats a dev row ("what's the weather like") goes to dev with it, so dev never scores
    # a text that trains; a held-out val row stays held out as published.
    dev_texts = {_norm(ex.text) for ex in corpus.sources["clinc"]["dev"]}
    for ex in clinc_rows("val", decisions, domains, clinc) + clinc_rows("oos_val", decisions, domains, clinc):
        part = clinc_val_part(ex.text, clinc_val)
        corpus.add("clinc", "dev" if part == "train" and _norm(ex.text) in dev_texts else part, [ex])
    # A text in two parts would carry what was trained on into what is scored: a website prompt CLINC150
    # already has ("good evening") stays wherever CLINC150 put it, and is not added again.
    known = {_norm(ex.text) for rows in corpus.parts.values() for ex in rows}
    for ex in website_rows():
        if _norm(ex.text) not in known:
            # The first file's held-out fifth was scored once (the first model's figures) and then looked
            # at while deciding what to change, so it is dev now: only website_prompts_2's cut is unseen.
            part = part_of(ex.text)
            corpus.add("website", "dev" if part == "heldout" else part, [ex])
            known.add(_norm(ex.text))
    for ex in website_rows(website_2):
        if _norm(ex.text) not in known:
            corpus.add("website2", website2_part(ex.text), [ex])
            known.add(_norm(ex.text))
    for name in LATER_WEBSITE:
        path = DATA / f"{name}.jsonl"
        if not path.exists():
            continue
        for ex in website_rows(path):
            if _norm(ex.text) not in known:
                corpus.add(name, later_part(name, ex.text), [ex])
                known.add(_norm(ex.text))
    if abuse:
        from shared.intent.abuse import load_benign, load_seed, split_bastioncorpus

        for part, rows in split_bastioncorpus().items():
            corpus.add("abuse", part, rows)
        corpus.add("seed", "train", load_seed() + load_benign())
    return corpus
