"""Labelled text in: JSON, JSONL or CSV rows of text and label (and optionally domain).

Accepted shapes, so users can bring their intents as they have them:

- JSONL: one object per line, ``{"text": ..., "label": ...}`` (``intent`` is accepted for ``label``,
  ``domain`` is optional), or one ``[text, label]`` pair per line.
- JSON: a list of such objects or pairs; or an object of named splits of them (CLINC150's
  ``train_val.json``), from which ``FILE#train,oos_train`` picks splits (all splits when none is named).
- CSV: a header row with ``text`` and ``label`` (or ``intent``) columns and optionally ``domain``.

The label ``oos`` marks out-of-scope text. A row may instead (or as well) carry a ``decision`` (one of
``routing.DECISIONS``: what the cache should do with it); a row with a decision needs no label.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.intent.routing import DECISIONS

OOS = "oos"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str  # "" (NO_LABEL): no intent label, the row trains and scores the decision head only
    domain: str | None = None
    decision: str | None = None  # None: no decision label, the row trains and scores the intent head only


NO_LABEL = ""


class DatasetError(ValueError):
    """A data file that cannot be read as labelled text; the message names the file and the row."""


def _row(item: Any, where: str) -> Example:
    decision = None
    if isinstance(item, dict):
        text = item.get("text")
        label = item.get("label", item.get("intent"))
        domain = item.get("domain")
        decision = item.get("decision")
    elif isinstance(item, list | tuple) and len(item) in (2, 3):
        text, label = item[0], item[1]
        domain = item[2] if len(item) == 3 else None
    else:
        raise DatasetError(f"{where}: expected an object with text and label, or a [text, label] pair")
    if decision is not None and decision not in DECISIONS:
        raise DatasetError(f"{where}: decision must be one of {list(DECISIONS)}, not {decision!r}")
    if label is None and decision is not None:
        label = NO_LABEL
    if not isinstance(text, str) or not isinstance(label, str) or not (label or decision):
        raise DatasetError(f"{where}: text and label must be strings (label non-empty unless the row has a "
                           "decision)")
    if domain is not None and not isinstance(domain, str):
        raise DatasetError(f"{where}: domain must be a string")
    return Example(text, label, domain or None, decision)


def load_examples(spec: str | Path) -> list[Example]:
    """Read ``FILE`` or ``FILE#split,split`` (JSON objects of splits only)."""
    raw = str(spec)
    path_text, _, splits = raw.partition("#") if not Path(raw).exists() else (raw, "", "")
    path = Path(path_text)
    try:
        raw_bytes = path.read_bytes()
        if path.suffix.lower() == ".gz":  # the repository keeps CLINC150 compressed
            raw_bytes = gzip.decompress(raw_bytes)
            path = path.with_suffix("")
        content = raw_bytes.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(content, path)
    if suffix == ".jsonl" or (suffix != ".json" and _looks_like_jsonl(content)):
        rows = []
        for number, line in enumerate(content.splitlines(), 1):
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                rows.append(_row(item, f"{path}:{number}"))
        return _nonempty(rows, path)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        names = [s for s in splits.split(",") if s] or list(data)
        unknown = [s for s in names if s not in data]
        if unknown:
            raise DatasetError(f"{path}: no split(s) {unknown}; it has {list(data)}")
        items = [(f"{path}#{name}[{i}]", item) for name in names for i, item in enumerate(data[name])]
    elif isinstance(data, list):
        items = [(f"{path}[{i}]", item) for i, item in enumerate(data)]
    else:
        raise DatasetError(f"{path}: expected a JSON list of examples or an object of splits")
    return _nonempty([_row(item, where) for where, item in items], path)


def _looks_like_jsonl(content: str) -> bool:
    first = content.lstrip()[:1]
    return first == "{" and "\n{" in content.strip()


def _from_csv(content: str, path: Path) -> list[Example]:
    reader = csv.DictReader(io.StringIO(content))
    fields = set(reader.fieldnames or [])
    label_key = "label" if "label" in fields else "intent" if "intent" in fields else None
    if "text" not in fields or (label_key is None and "decision" not in fields):
        raise DatasetError(f"{path}: the CSV header must name a 'text' and a 'label' (or 'intent' or "
                           f"'decision') column; it has {sorted(fields)}")
    rows = []
    for number, record in enumerate(reader, 2):
        rows.append(_row({"text": record["text"], "label": (record[label_key] if label_key else "") or None,
                          "domain": record.get("domain") or None,
                          "decision": record.get("decision") or None}, f"{path}:{number}"))
    return _nonempty(rows, path)


def _nonempty(rows: list[Example], path: Path) -> list[Example]:
    if not rows:
        raise DatasetError(f"{path}: no examples")
    return rows


def load_domains(path: str | Path) -> dict[str, str]:
    """A JSON object of domain -> [labels] (CLINC150's ``domains.json``), inverted to label -> domain."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read domains file {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DatasetError(f"{path}: expected an object mapping each domain to a list of labels")
    return {label: domain for domain, labels in data.items() for label in labels}
