"""The pooled path (shared/intent/pooled.py) computes what the generic interpreter computes, on any ids."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.intent.classifier import DEFAULT_MODEL, OnnxIntentClassifier
from shared.intent.pooled import PooledHeads
from shared.onnx_lite import Model
from shared.onnx_lite.proto import parse_model

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")

ROWS, DIM = 50, 8


def _graph(heads: int, seed: int = 0, scale: float = 0.03, hidden: int = 0, reads: tuple[bool, ...] = ()) -> bytes:
    """A graph of the exported shape (train.export) with random weights and ``heads`` output heads; with
    ``hidden``, a Gemm + Relu layer that the heads flagged in ``reads`` read instead of the pooled mean."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (ROWS, DIM)).astype(np.int8), "embedding"),
             numpy_helper.from_array(np.asarray(scale, dtype=np.float32), "embedding_scale")]
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["rows"], axis=0),
             helper.make_node("Cast", ["rows"], ["rows_f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["rows_f"], ["mean_q"], axes=[0], keepdims=1),
             helper.make_node("Mul", ["mean_q", "embedding_scale"], ["pooled"])]
    outputs = []
    if hidden:
        inits += [numpy_helper.from_array(rng.normal(0, 1, (hidden, DIM)).astype(np.float32), "hw"),
                  numpy_helper.from_array(rng.normal(0, 0.5, hidden).astype(np.float32), "hb")]
        nodes += [helper.make_node("Gemm", ["pooled", "hw", "hb"], ["pre"], transB=1),
                  helper.make_node("Relu", ["pre"], ["hidden"])]
    for h in range(heads):
        size = 3 + 2 * h
        source = "hidden" if h < len(reads) and reads[h] else "pooled"
        width = hidden if source == "hidden" else DIM
        inits += [numpy_helper.from_array(rng.normal(0, 2, (size, width)).astype(np.float32), f"w{h}"),
                  numpy_helper.from_array(rng.normal(0, 1, size).astype(np.float32), f"b{h}")]
        nodes += [helper.make_node("Gemm", [source, f"w{h}", f"b{h}"], [f"l{h}"], transB=1),
                  helper.make_node("Softmax", [f"l{h}"], [f"p{h}"], axis=1)]
        outputs.append(helper.make_tensor_value_info(f"p{h}", TensorProto.FLOAT, [1, size]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
                              outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


GRAPHS = {heads: _graph(heads) for heads in (1, 2)}
# With a hidden ReLU layer (issue 16's second model): read by the decision head only, by both, by the
# first head only (any order works), and a wide one.
HIDDEN = {"decision": _graph(2, hidden=16, reads=(False, True)), "both": _graph(2, hidden=16, reads=(True, True)),
          "first": _graph(2, hidden=12, reads=(True, False)), "wide": _graph(2, seed=3, hidden=128, reads=(True, True))}


def _both(data: bytes, ids: list[int]) -> tuple[list[list[float]], list[list[float]]]:
    pooled = PooledHeads.match(parse_model(data))
    assert pooled is not None
    generic = Model.load(data, backend="pure")
    out = generic.run({"ids": ids})
    return pooled.run(ids), [list(out[info.name].data) for info in generic.outputs]


@settings(max_examples=60, deadline=None)
@given(heads=st.sampled_from([1, 2]), ids=st.lists(st.integers(-ROWS, ROWS - 1), min_size=1, max_size=300))
def test_matches_the_generic_interpreter(heads: int, ids: list[int]) -> None:
    """Any ids, negative ones and repeats included: every head within 1e-6 of the interpreter."""
    fast, slow = _both(GRAPHS[heads], ids)
    assert len(fast) == len(slow) == heads
    for a, b in zip(fast, slow, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-7


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(HIDDEN)), ids=st.lists(st.integers(-ROWS, ROWS - 1), min_size=1, max_size=300))
def test_hidden_layer_matches_the_generic_interpreter(kind: str, ids: list[int]) -> None:
    """A graph with a Gemm + Relu layer is matched too, and every head stays within 1e-6 of the interpreter
    (the second pass scales the ReLU's outputs to integers: ~2**-25 of the largest, far inside 1e-5)."""
    fast, slow = _both(HIDDEN[kind], ids)
    assert len(fast) == len(slow) == 2
    for a, b in zip(fast, slow, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6


def test_hidden_layer_all_zero_after_relu() -> None:
    """When the ReLU zeroes every hidden unit, the heads reading it give the softmax of their biases."""
    from onnx import numpy_helper

    proto = onnx.load_from_string(HIDDEN["both"])
    for init in proto.graph.initializer:
        if init.name == "hb":
            init.CopyFrom(numpy_helper.from_array(np.full(16, -1e6, dtype=np.float32), "hb"))
    fast, slow = _both(proto.SerializeToString(), [1, 2, 3])
    for a, b in zip(fast, slow, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-7


def test_many_repeats_do_not_carry_between_fields() -> None:
    """Thousands of copies of the most negative and most positive rows still sum exactly per column."""
    data = GRAPHS[1]
    table = np.asarray(onnx.numpy_helper.to_array(onnx.load_from_string(data).graph.initializer[0]))
    low, high = int(table.sum(axis=1).argmin()), int(table.sum(axis=1).argmax())
    fast, slow = _both(data, [low] * 3000 + [high] * 2000)
    assert max(abs(x - y) for x, y in zip(fast[0], slow[0], strict=True)) < 1e-6


def test_out_of_range_id_is_refused() -> None:
    """An id past the table fails loudly, as Gather does, instead of reading another row."""
    pooled = PooledHeads.match(parse_model(GRAPHS[1]))
    assert pooled is not None
    with pytest.raises(IndexError):
        pooled.run([ROWS])
    with pytest.raises(ValueError):
        pooled.run([])


def test_other_graphs_are_left_to_the_interpreter(tmp_path: Path) -> None:
    """A graph of another shape is not matched; the "pooled" runtime then uses the interpreter."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert PooledHeads.match(parse_model(data)) is None


def test_shipped_model_uses_it_and_agrees() -> None:
    """The shipped model is matched, and classify gives the interpreter's decision and intent."""
    data = DEFAULT_MODEL.read_bytes()
    fast = OnnxIntentClassifier(data, runtime="pooled")
    slow = OnnxIntentClassifier(data, runtime="pure")
    assert fast.runtime.name == "pooled"
    rng = random.Random(0)
    words = ["my", "order", "weather", "now", "how", "do", "i", "bake", "bread", "hi", "price", "today"]
    for _ in range(30):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        a, b = fast.classify(text), slow.classify(text)
        assert (a.label, a.decision) == (b.label, b.decision)
        assert abs(a.confidence - b.confidence) < 1e-6 and abs(a.decision_confidence - b.decision_confidence) < 1e-6


def test_more_ids_than_the_integer_path_holds() -> None:
    """Past MAX_IDS ids the float path answers, still within 1e-7 of the interpreter."""
    from shared.intent import pooled as module

    ids = list(range(ROWS)) * (module.MAX_IDS // ROWS + 1)
    for data in (GRAPHS[2], HIDDEN["decision"], HIDDEN["both"]):
        fast, slow = _both(data, ids)
        for a, b in zip(fast, slow, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6
