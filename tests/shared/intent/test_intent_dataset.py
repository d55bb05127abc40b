"""Labelled text loads from JSON, JSONL and CSV, and bad files fail with the file and row named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.intent.dataset import DatasetError, Example, load_domains, load_examples


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
