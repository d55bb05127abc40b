"""Questions the intent model was trained on are left out of the held-out figures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from loadtest.banks import Question
from loadtest.overlap import held_out, same_question_key, training_keys


def test_copies_match_and_paraphrases_do_not() -> None:
    """Case, punctuation and spacing do not make a new question; other words do."""
    assert same_question_key("What's my Wi-Fi password?") == same_question_key("  whats my   wifi PASSWORD")
    assert same_question_key("What is my wifi password") != same_question_key("What's my wifi password")


@given(st.text())
def test_the_key_is_stable(text: str) -> None:
    """Keying a key changes nothing (so stored and fresh texts compare alike)."""
    assert same_question_key(same_question_key(text)) == same_question_key(text)


def test_training_texts_are_found_in_every_shape(tmp_path: Path) -> None:
    """JSONL records, CLINC150's JSON rows (also gzipped) and CSV ``text`` columns, in nested folders."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "prompts.jsonl").write_text('{"text": "Where is my parcel?", "decision": "personal"}\nnot json\n')
    rows = {"train": [["what's the weather today", "weather"]], "oos_val": [["sing to me", "oos"]]}
    (tmp_path / "clinc.json.gz").write_bytes(gzip.compress(json.dumps(rows).encode()))
    (tmp_path / "table.csv").write_text("text,label\nHow do I reset my password?,shared\n")
    (tmp_path / "notes.md").write_text("What is the capital of France?")
    keys = training_keys([tmp_path, tmp_path / "absent"])
    assert keys == {"where is my parcel", "whats the weather today", "sing to me", "how do i reset my password"}


def test_held_out_splits_the_bank(tmp_path: Path) -> None:
    """What the training data holds is dropped and counted; the rest is kept in order."""
    seen = {same_question_key("What's the weather today?")}
    kept, dropped = held_out([Question("Is it raining in Oslo?", "time_sensitive"),
                              Question("what's the WEATHER today", "time_sensitive")], seen)
    assert [q.text for q in kept] == ["Is it raining in Oslo?"] and len(dropped) == 1
