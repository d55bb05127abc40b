"""The ONNX reader's errors: each broken or unsupported file gets an OnnxLiteError saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.intent.classifier import DEFAULT_MODEL
from shared.onnx_lite import InputShapeError, MalformedModel, Model, OnnxLiteError, UnsupportedOperator
from shared.onnx_lite.proto import parse_model


@pytest.fixture(scope="module")
def shipped() -> bytes:
    return DEFAULT_MODEL.read_bytes()


class TestMalformed:
    def test_empty_file(self) -> None:
        """An empty file is refused with a message saying it is empty."""
        with pytest.raises(MalformedModel, match="empty"):
            Model.load(b"", backend="pure")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist is a MalformedModel naming the path, not an OSError."""
        with pytest.raises(MalformedModel, match=r"nope\.onnx"):
            Model.load(tmp_path / "nope.onnx", backend="pure")

    @pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"hello, world\n", b"\x00" * 64,
                                      b'{"not": "onnx"}'])
    def test_not_an_onnx_file(self, data: bytes) -> None:
        """Bytes that are not a ModelProto fail in the decoder with a MalformedModel."""
        with pytest.raises(MalformedModel):
            Model.load(data, backend="pure")

    @pytest.mark.parametrize("keep", [0.999, 0.5, 0.1, 0.001])
    def test_truncated_file(self, shipped: bytes, keep: float) -> None:
        """A file cut short anywhere is reported as truncated or corrupt, never as an IndexError."""
        with pytest.raises(MalformedModel, match=r"truncated|corrupt|no graph|cut short"):
            Model.load(shipped[:int(len(shipped) * keep)], backend="pure")

    def test_metadata_survives_decoding(self, shipped: bytes) -> None:
        """The decoder reads the model's metadata without decoding its tensors' values."""
        model = parse_model(shipped)
        assert model.metadata["eaves.kind"] == "intent-classifier"
        assert model.opsets[""] >= 13

    def test_errors_share_one_base_class(self) -> None:
        """Callers can catch every reader and interpreter failure with OnnxLiteError."""
        assert issubclass(MalformedModel, OnnxLiteError)
        assert issubclass(UnsupportedOperator, OnnxLiteError)
        assert issubclass(InputShapeError, OnnxLiteError)


class TestUnsupported:
    def test_unknown_operator_is_named(self, shipped: bytes) -> None:
        """A graph using an op the interpreter lacks fails at load, naming the op and the node."""
        # Same length, so the protobuf stays well-formed and only the op type changes.
        broken = shipped.replace(b"Softmax", b"Softmux", 1)
        assert broken != shipped
        with pytest.raises(UnsupportedOperator, match=r"'Softmux'.*does not implement"):
            Model.load(broken, backend="pure")

    def test_unknown_operator_with_numpy(self, shipped: bytes) -> None:
        """The numpy backend refuses the same unknown op the same way."""
        pytest.importorskip("numpy")
        with pytest.raises(UnsupportedOperator, match="Softmux"):
            Model.load(shipped.replace(b"Softmax", b"Softmux", 1), backend="numpy")


class TestInputs:
    def test_wrong_rank(self, shipped: bytes) -> None:
        """A 2-D input where the model declares 1-D is an InputShapeError naming both shapes."""
        model = Model.load(shipped, backend="pure")
        with pytest.raises(InputShapeError, match=r"shape \[1, 3\].*declares \[n\]"):
            model.run({"ids": [[1, 2, 3]]})

    def test_wrong_rank_numpy(self, shipped: bytes) -> None:
        """The numpy backend checks input shapes the same way."""
        pytest.importorskip("numpy")
        model = Model.load(shipped, backend="numpy")
        with pytest.raises(InputShapeError, match="declares"):
            model.run({"ids": [[1, 2, 3]]})

    def test_wrong_name(self, shipped: bytes) -> None:
        """Feeding an input the graph does not have names the inputs it does have."""
        model = Model.load(shipped, backend="pure")
        with pytest.raises(InputShapeError, match=r"unknown input.*'tokens'"):
            model.run({"ids": [1], "tokens": [2]})

    def test_missing_input(self, shipped: bytes) -> None:
        """Leaving out a required input is an InputShapeError."""
        model = Model.load(shipped, backend="pure")
        with pytest.raises(InputShapeError, match="missing input"):
            model.run({})

    def test_wrong_type(self, shipped: bytes) -> None:
        """Floats for an int64 input are refused rather than silently truncated."""
        model = Model.load(shipped, backend="pure")
        with pytest.raises(InputShapeError, match="integers"):
            model.run({"ids": [1.5, 2.0]})

    def test_index_out_of_range(self, shipped: bytes) -> None:
        """An id beyond the embedding table is reported by Gather, not as an IndexError."""
        model = Model.load(shipped, backend="pure")
        with pytest.raises(InputShapeError, match="out of range"):
            model.run({"ids": [10**9]})
