"""The teacher (training time only): its numpy encoder, its vectors file, and distillation in training."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from shared.intent import teacher as teacher_mod
from shared.intent.corpus import load_corpus
from shared.intent.dataset import NO_LABEL, Example
from shared.intent.featurise import FeaturiserSettings
from shared.intent.teacher import MiniLM, TeacherError, load_vectors, read_safetensors, reduce, save_vectors
from shared.intent.train import TrainSettings, train

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "how", "do", "i", "reset", "my", "password", "where", "is",
         "order", "the", "weather", "today"]


def safetensors_bytes(tensors: dict[str, Any]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def with_header(header: dict[str, Any], data: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


def tiny_bert(width: int = 8, heads: int = 2, layers: int = 2, inner: int = 16, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> Any:
        return rng.standard_normal(shape).astype(np.float32) * 0.5

    w = {"embeddings.word_embeddings.weight": r(len(VOCAB), width),
         "embeddings.position_embeddings.weight": r(32, width),
         "embeddings.token_type_embeddings.weight": r(2, width),
         "embeddings.LayerNorm.weight": 1 + r(width) * 0.1, "embeddings.LayerNorm.bias": r(width) * 0.1}
    for layer in range(layers):
        p = f"encoder.layer.{layer}."
        for name, (out, inp) in {"attention.self.query": (width, width), "attention.self.key": (width, width),
                                 "attention.self.value": (width, width), "attention.output.dense": (width, width),
                                 "intermediate.dense": (inner, width), "output.dense": (width, inner)}.items():
            w[p + name + ".weight"], w[p + name + ".bias"] = r(out, inp), r(out) * 0.1
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"], w[p + name + ".bias"] = 1 + r(width) * 0.1, r(width) * 0.1
    return w


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({word: i for i, word in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                               ("[SEP]", 3)])
    tok.enable_padding(length=24)  # as the real tokenizer.json does: the encoder must undo it
    return tok


@pytest.fixture(scope="module")
def model_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"num_attention_heads": 2, "num_hidden_layers": 2}))
        archive.writestr("model.safetensors", safetensors_bytes(tiny_bert()))
        archive.writestr("tokenizer.json", tiny_tokenizer().to_str())
    return path


def reference(weights: dict[str, Any], ids: list[int], heads: int, layers: int) -> Any:
    """One sequence, no padding, one attention head at a time: BERT as its paper writes it."""
    def norm(x: Any, name: str) -> Any:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * weights[name + ".weight"] + weights[name + ".bias"]

    def lin(x: Any, name: str) -> Any:
        return x @ weights[name + ".weight"].T + weights[name + ".bias"]

    n = len(ids)
    x = norm(weights["embeddings.word_embeddings.weight"][ids] + weights["embeddings.position_embeddings.weight"][:n]
             + weights["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    width = x.shape[1]
    size = width // heads
    for layer in range(layers):
        p = f"encoder.layer.{layer}."
        q, k, v = (lin(x, p + f"attention.self.{n_}") for n_ in ("query", "key", "value"))
        parts = []
        for h in range(heads):
            cols = slice(h * size, (h + 1) * size)
            s = q[:, cols] @ k[:, cols].T / np.sqrt(size)
            a = np.exp(s - s.max(1, keepdims=True))
            parts.append((a / a.sum(1, keepdims=True)) @ v[:, cols])
        x = norm(lin(np.concatenate(parts, axis=1), p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        inner = lin(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + np.tanh(np.sqrt(2 / np.pi) * (inner + 0.044715 * inner ** 3)))
        x = norm(lin(inner, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


class TestEncoder:
    TEXTS = ("how do i reset my password", "where is my order", "weather today", "the", "how do i")

    def test_matches_the_one_sequence_reference(self, model_zip: Path) -> None:
        encoder = MiniLM.from_zip(model_zip)
        got = encoder.encode(self.TEXTS, batch=3)
        weights = tiny_bert()
        for text, row in zip(self.TEXTS, got, strict=True):
            ids = encoder.tokenizer.encode(text).ids
            assert ids[0] == 2 and ids[-1] == 3 and 0 not in ids  # [CLS] ... [SEP], no padding left
            np.testing.assert_allclose(row, reference(weights, ids, 2, 2), atol=1e-5)

    def test_unit_length_in_order_and_padding_changes_nothing(self, model_zip: Path) -> None:
        encoder = MiniLM.from_zip(model_zip)
        together = encoder.encode(self.TEXTS, batch=8)
        alone = np.stack([encoder.encode([t])[0] for t in self.TEXTS])
        np.testing.assert_allclose(together, alone, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(together[0], together[1])

    def test_missing_package_says_how_to_install_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(teacher_mod, "TEACHER_PACKAGE", "no_such_teacher_package_here")
        with pytest.raises(TeacherError, match="scripts/setup --teacher"):
            MiniLM.from_package()


class TestSafetensors:
    def test_round_trip(self) -> None:
        tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, dtype=np.float32)}
        got = read_safetensors(safetensors_bytes(tensors))
        assert set(got) == {"a", "b"}
        np.testing.assert_array_equal(got["a"], tensors["a"])

    @pytest.mark.parametrize("data, message", [
        (b"\x01", "shorter"),
        (struct.pack("<Q", 100) + b"{}", "past the end"),
        (struct.pack("<Q", 3) + b"{x}", "not JSON"),
        (with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8), "outside"),
        (with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}}, b"\0" * 16), "outside"),
        (with_header({"a": {"dtype": "BOOL", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "dtype"),
    ])
    def test_broken_files_are_refused(self, data: bytes, message: str) -> None:
        with pytest.raises(TeacherError, match=message):
            read_safetensors(data)


class TestVectorsFile:
    def test_reduce_keeps_geometry_and_round_trips(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(1)
        # Points on a 3-dimensional subspace of a 20-dimensional space: 3 components keep every distance.
        points = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 20))
        q, scale = reduce(points.astype(np.float32), 3)
        assert q.dtype == np.int8 and q.shape == (50, 3)
        save_vectors(tmp_path / "v.npz", [f"t{i}" for i in range(50)], q, scale)
        back = load_vectors(tmp_path / "v.npz")
        assert back["texts"][7] == "t7" and back["emb"].shape == (50, 3)
        d_orig = np.linalg.norm(points[:, None] - points[None], axis=2)
        d_back = np.linalg.norm(back["emb"][:, None] - back["emb"][None], axis=2)
        assert np.abs(d_orig - d_back).max() < 0.02 * d_orig.max()

    def test_a_broken_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        with pytest.raises(TeacherError, match="not a teacher vectors file"):
            load_vectors(tmp_path / "bad.npz")
        with pytest.raises(TeacherError, match="texts but"):
            save_vectors(tmp_path / "v.npz", ["a"], np.zeros((2, 3), dtype=np.int8), 1.0)

    def test_the_shipped_file_holds_training_texts_only(self) -> None:
        """A dev or held-out text with a teacher vector would carry what is scored into what is trained."""
        vectors = load_vectors()
        corpus = load_corpus()
        trained = {ex.text for ex in corpus.parts["train"]}
        scored = {ex.text for part in ("dev", "heldout") for ex in corpus.parts[part]}
        texts = vectors["texts"]
        assert vectors["emb"].shape == (len(texts), teacher_mod.DIMS)
        # Exactly the train part's texts. (CLINC150 itself repeats a few sentences across its splits, which
        # its labels already train; the teacher adds no text that training does not already see.)
        assert set(texts) == trained and len(texts) == len(trained)
        assert not set(texts) & scored - trained


class TestDistillation:
    SETTINGS = TrainSettings(dim=8, epochs=6, hidden=8, featuriser=FeaturiserSettings(buckets=512))

    def rows(self) -> list[Example]:
        texts = ["how do i reset my password", "where is my order", "weather today", "reset password",
                 "order status", "is it raining"]
        return [Example(t, ["a", "b", "c"][i % 3], None, ["shared", "personal", "time_sensitive"][i % 3])
                for i, t in enumerate(texts)] * 5

    def teacher(self) -> dict[str, Any]:
        rng = np.random.default_rng(3)
        texts = [*sorted({ex.text for ex in self.rows()}), "refund"]
        return {"texts": texts, "emb": rng.standard_normal((len(texts), 6)).astype(np.float32)}

    def test_weight_zero_ignores_the_teacher(self) -> None:
        plain = train(self.rows(), self.SETTINGS, log=lambda _m: None)
        taught = train(self.rows(), self.SETTINGS, log=lambda _m: None, teacher=self.teacher())
        np.testing.assert_array_equal(plain.embedding, taught.embedding)
        np.testing.assert_array_equal(plain.d_weight, taught.d_weight)

    def test_the_pooled_average_moves_towards_the_teachers_vectors(self) -> None:
        """With distillation, a linear map from the pooled averages fits the teacher's vectors better than
        without: the geometry was handed over. Rows without a label (a teacher-only word) train nothing else."""
        from dataclasses import replace

        words = ["reset", "password", "order", "weather", "refund", "parcel", "rain", "login", "invoice", "snow"]
        texts = [f"{a} {b}" for a in words[:5] for b in words[5:]]  # 25 texts, more than the 5 pooled dims
        rng = np.random.default_rng(3)
        # Vectors of rank 3, so that 4 pooled dimensions can hold them.
        vectors = rng.standard_normal((len(texts), 3)) @ rng.standard_normal((3, 6))
        teacher = {"texts": texts, "emb": vectors.astype(np.float32)}
        rows = self.rows() + [Example(t, NO_LABEL, None, None) for t in texts]
        settings = replace(self.SETTINGS, dim=4, hidden=4, epochs=300, dropout=0.0, batch=16)

        def fit_error(model: Any) -> float:
            from shared.intent.featurise import featurise

            pooled = np.stack([model.embedding[featurise(t, settings.featuriser)[0]].mean(0)
                               for t in teacher["texts"]])
            x = np.c_[pooled, np.ones(len(pooled))]
            coef, *_ = np.linalg.lstsq(x, teacher["emb"], rcond=None)
            return float(((x @ coef - teacher["emb"]) ** 2).mean())

        plain = train(rows, settings, log=lambda _m: None)
        taught = train(rows, replace(settings, distil_embedding=5.0), log=lambda _m: None, teacher=teacher)
        assert fit_error(taught) < 0.5 * fit_error(plain)


class TestTrainCommand:
    def pipeline(self, tmp_path: Path, *extra: str) -> tuple[int, Path]:
        from eaves.cli import main

        out = tmp_path / "distilled.onnx"
        code = main(["intent", "train", "--corpus", "--no-abuse", "--slice", "16", "--epochs", "2", "--dim", "16",
                     "--buckets", "2048", "--hidden", "8", "--quiet", "--out", str(out), *extra])
        return code, out

    def test_the_pipeline_distils_and_exports_no_extra_weights(self, tmp_path: Path) -> None:
        from shared.onnx_lite.proto import parse_model

        texts = sorted({ex.text for ex in load_corpus(abuse=False).parts["train"]})[::16]
        rng = np.random.default_rng(0)
        q, scale = reduce(rng.standard_normal((len(texts), 12)).astype(np.float32), 6)
        save_vectors(tmp_path / "v.npz", texts, q, scale)
        code, plain = self.pipeline(tmp_path)
        plain_bytes = plain.read_bytes()
        code_t, taught = self.pipeline(tmp_path, "--teacher", str(tmp_path / "v.npz"), "--distil-embedding", "1")
        assert code == code_t == 0
        a, b = parse_model(plain_bytes), parse_model(taught.read_bytes())
        assert a.graph is not None and b.graph is not None
        assert [(i.name, i.dims) for i in a.graph.initializers] == [(i.name, i.dims) for i in b.graph.initializers]
        assert plain_bytes != taught.read_bytes()

    def test_a_weight_without_a_teacher_or_a_broken_file_is_exit_code_2(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _ = self.pipeline(tmp_path, "--distil-embedding", "1")
        assert code == 2 and "--distil-embedding needs --teacher" in capsys.readouterr().err
        (tmp_path / "bad.npz").write_text("no")
        code, _ = self.pipeline(tmp_path, "--teacher", str(tmp_path / "bad.npz"), "--distil-embedding", "1")
        assert code == 2 and "not a teacher vectors file" in capsys.readouterr().err


class TestVectorsCommand:
    """`python -m shared.intent.teacher --data mine.jsonl`: vectors of your own training texts, then distil."""

    @pytest.fixture
    def tiny_teacher(self, model_zip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(MiniLM, "from_package", classmethod(lambda cls: MiniLM.from_zip(model_zip)))

    def test_your_own_texts_then_training_with_them(self, tiny_teacher: None, tmp_path: Path) -> None:
        from eaves.cli import main as eaves_main
        from shared.intent.teacher import main

        rows = [{"text": f"{a} {b}", "label": a} for a in ("reset", "order", "weather") for b in VOCAB[4:]]
        data = tmp_path / "mine.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        assert main(["--data", str(data), "--out", str(tmp_path / "v.npz")]) == 0
        vectors = load_vectors(tmp_path / "v.npz")
        assert vectors["texts"] == sorted({row["text"] for row in rows})
        assert vectors["emb"].shape == (len(rows), 8)  # the tiny encoder is 8 wide: no more components than that
        code = eaves_main(["intent", "train", "--data", str(data), "--out", str(tmp_path / "m.onnx"), "--dim", "8",
                           "--buckets", "512", "--epochs", "2", "--quiet", "--teacher", str(tmp_path / "v.npz"),
                           "--distil-embedding", "1"])
        assert code == 0

    def test_bad_input_is_exit_code_2(self, tiny_teacher: None, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        from shared.intent.teacher import main

        assert main(["--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "v.npz")]) == 2
        assert main(["--data", str(tmp_path / "missing.jsonl")]) == 2  # would overwrite the shipped file
        assert "give --out" in capsys.readouterr().err
        one = tmp_path / "one.jsonl"
        one.write_text(json.dumps({"text": "hi", "label": "greeting"}) + "\n")
        assert main(["--data", str(one), "--out", str(tmp_path / "v.npz")]) == 2
        assert "at least two distinct texts" in capsys.readouterr().err
        assert not (tmp_path / "v.npz").exists()

    def test_without_the_teacher_it_says_how_to_install_it(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        from shared.intent.teacher import main

        monkeypatch.setattr(teacher_mod, "TEACHER_PACKAGE", "no_such_teacher_package_here")
        data = tmp_path / "two.jsonl"
        data.write_text("".join(json.dumps({"text": t, "label": "x"}) + "\n" for t in ("a b", "c d")))
        assert main(["--data", str(data), "--out", str(tmp_path / "v.npz")]) == 2
        assert "scripts/setup --teacher" in capsys.readouterr().err
