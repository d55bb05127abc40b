"""The held-out question banks: well-formed, big enough, no question under two labels. (The issue's examples
are training data now: tests/shared/intent/test_intent_shipped_decisions.py routes them.)"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.banks import LABELS, BankError, Question, load_banks, parse_bank

MINIMUM = {"shareable": 150, "personal": 150, "time_sensitive": 100, "small_talk": 60, "fresh": 50}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().rstrip(".?!").split())


def test_every_label_has_enough_questions() -> None:
    """At least the counts the evaluation was designed for."""
    banks = load_banks()
    assert set(banks) == set(LABELS)
    for label, minimum in MINIMUM.items():
        assert len(banks[label]) >= minimum, label


def test_no_question_twice() -> None:
    """Not even under another label or another spelling: a repeat would score one question twice."""
    seen: dict[str, str] = {}
    for label, questions in load_banks().items():
        for q in questions:
            assert _norm(q.text) not in seen, (q.text, label, seen.get(_norm(q.text)))
            seen[_norm(q.text)] = label


def test_malformed_lines_name_file_and_line() -> None:
    """A bad line is an error that says where, never a silently skipped question."""
    good = '{"text": "hi", "label": "small_talk"}'
    assert parse_bank([good, "", "  "])[0].label == "small_talk"
    for bad, words in (("{", "not JSON"), ('["hi"]', "object"), ('{"text": "", "label": "fresh"}', "'text'"),
                       ('{"text": "hi", "label": "urgent"}', "'label'")):
        with pytest.raises(BankError, match=words) as info:
            parse_bank([good, bad], "b.jsonl")
        assert str(info.value).startswith("b.jsonl:2:")


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    """Pointing --banks at the wrong place says so."""
    with pytest.raises(BankError, match=r"no \*\.jsonl"):
        load_banks(tmp_path)


@given(st.lists(st.tuples(st.text(min_size=1).filter(str.strip), st.sampled_from(LABELS)), max_size=20))
def test_any_written_bank_reads_back(rows: list[tuple[str, str]]) -> None:
    """Whatever text (quotes, newlines, any Unicode) json.dumps writes, the parser returns unchanged."""
    lines = [json.dumps({"text": text, "label": label}, ensure_ascii=False) for text, label in rows]
    assert parse_bank(lines) == [Question(text, label) for text, label in rows]


@given(st.text(max_size=200))
def test_any_line_parses_or_is_refused_with_a_bank_error(line: str) -> None:
    """A corrupt line never raises anything but BankError."""
    with contextlib.suppress(BankError):
        parse_bank([line])
