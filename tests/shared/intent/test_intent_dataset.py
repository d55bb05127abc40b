"""Labelled text loads from JSON, JSONL and CSV, and bad files fail with the file and row named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.intent.dataset import DatasetError, Example, load_domains, load_examples
from shared.intent.routing import DECISIONS


class TestFormats:
    def test_jsonl_objects_and_pairs(self, tmp_path: Path) -> None:
        """JSONL takes objects (label or intent, optional domain) and [text, label] pairs."""
        path = tmp_path / "d.jsonl"
        path.write_text('{"text": "hi", "label": "greeting"}\n\n["bye", "goodbye"]\n'
                        '{"text": "x", "intent": "oos", "domain": "oos"}\n')
        assert load_examples(path) == [Example("hi", "greeting"), Example("bye", "goodbye"),
                                       Example("x", "oos", "oos")]

    def test_json_splits(self, tmp_path: Path) -> None:
        """A JSON object of splits loads the splits named after '#', or all of them."""
        path = tmp_path / "d.json"
        path.write_text(json.dumps({"train": [["a", "x"]], "val": [["b", "y"]], "oos_val": [["c", "oos"]]}))
        assert [e.text for e in load_examples(f"{path}#val,oos_val")] == ["b", "c"]
        assert len(load_examples(path)) == 3
        with pytest.raises(DatasetError, match="no split"):
            load_examples(f"{path}#test")

    def test_csv(self, tmp_path: Path) -> None:
        """CSV needs text and label columns; domain is optional."""
        path = tmp_path / "d.csv"
        path.write_text('text,label,domain\n"hello, there",greeting,small_talk\nwhat,oos,\n')
        assert load_examples(path) == [Example("hello, there", "greeting", "small_talk"),
                                       Example("what", "oos")]


class TestErrors:
    def test_csv_without_label_column(self, tmp_path: Path) -> None:
        """A CSV without a label column names the columns it does have."""
        path = tmp_path / "d.csv"
        path.write_text("sentence,tag\nhi,greeting\n")
        with pytest.raises(DatasetError, match=r"'label'.*sentence"):
            load_examples(path)

    def test_bad_jsonl_line(self, tmp_path: Path) -> None:
        """A broken JSONL line is reported with its line number."""
        path = tmp_path / "d.jsonl"
        path.write_text('{"text": "a", "label": "b"}\n{"text": oops}\n')
        with pytest.raises(DatasetError, match=r"d\.jsonl:2"):
            load_examples(path)

    def test_missing_label(self, tmp_path: Path) -> None:
        """A row without a label is refused."""
        path = tmp_path / "d.json"
        path.write_text('[{"text": "a"}]')
        with pytest.raises(DatasetError, match="label"):
            load_examples(path)

    def test_empty_and_missing_files(self, tmp_path: Path) -> None:
        """An empty file and a missing file are both DatasetErrors."""
        (tmp_path / "e.jsonl").write_text("\n")
        with pytest.raises(DatasetError, match="no examples"):
            load_examples(tmp_path / "e.jsonl")
        with pytest.raises(DatasetError, match="cannot read"):
            load_examples(tmp_path / "none.csv")


def test_domains_file_inverts(tmp_path: Path) -> None:
    """A domains file maps each label to its domain."""
    path = tmp_path / "domains.json"
    path.write_text('{"banking": ["balance", "transfer"], "small_talk": ["greeting"]}')
    assert load_domains(path) == {"balance": "banking", "transfer": "banking", "greeting": "small_talk"}


class TestDecisions:
    def test_rows_with_a_decision_need_no_label(self, tmp_path: Path) -> None:
        """JSONL and CSV rows may carry a decision instead of (or beside) an intent label."""
        path = tmp_path / "d.jsonl"
        path.write_text('{"text": "where is my parcel", "decision": "personal"}\n'
                        '{"text": "hi", "label": "greeting", "decision": "small_talk"}\n')
        assert load_examples(path) == [Example("where is my parcel", "", None, "personal"),
                                       Example("hi", "greeting", None, "small_talk")]
        csv_path = tmp_path / "d.csv"
        csv_path.write_text("text,decision\nwhat's the weather now,time_sensitive\n")
        assert load_examples(csv_path) == [Example("what's the weather now", "", None, "time_sensitive")]

    def test_gzipped_json(self, tmp_path: Path) -> None:
        """A .json.gz file of splits reads like the .json it holds (the repository's CLINC150)."""
        import gzip

        path = tmp_path / "d.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"train": [["a", "x"]], "val": [["b", "y"]]}).encode()))
        assert [e.text for e in load_examples(f"{path}#val")] == ["b"]
        (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
        with pytest.raises(DatasetError, match="cannot read"):
            load_examples(tmp_path / "bad.json.gz")

    @given(text=st.text(max_size=40), decision=st.text(max_size=20))
    def test_decision_is_one_of_the_five_or_an_error(self, tmp_path_factory: pytest.TempPathFactory, text: str,
                                                     decision: str) -> None:
        """Any decision string either is one of the five and loads, or fails naming the allowed ones."""
        path = tmp_path_factory.mktemp("d") / "d.jsonl"
        path.write_text(json.dumps({"text": text, "decision": decision}) + "\n", encoding="utf-8")
        if decision in DECISIONS:
            assert load_examples(path) == [Example(text, "", None, decision)]
        else:
            with pytest.raises(DatasetError, match="decision must be one of"):
                load_examples(path)
