"""A protobuf decoder for the subset of ONNX's ``ModelProto`` that inference needs.

Written by hand from the wire format (varints, fixed 32/64-bit, length-delimited fields) and
``onnx.proto3``'s field numbers, so reading a model needs neither the ``onnx`` nor the ``protobuf``
package: neither exists inside Pyodide. Unknown fields are skipped, as protobuf readers must.
Every error is a ``MalformedModel`` naming the message and field where decoding stopped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from shared.onnx_lite.errors import MalformedModel, UnsupportedModel

# TensorProto.DataType values (onnx.proto3) -> (name, struct code, item size).
DTYPES: dict[int, tuple[str, str, int]] = {
    1: ("float32", "f", 4),
    2: ("uint8", "B", 1),
    3: ("int8", "b", 1),
    4: ("uint16", "H", 2),
    5: ("int16", "h", 2),
    6: ("int32", "i", 4),
    7: ("int64", "q", 8),
    9: ("bool", "?", 1),
    10: ("float16", "e", 2),
    11: ("float64", "d", 8),
    12: ("uint32", "I", 4),
    13: ("uint64", "Q", 8),
}
DTYPE_CODES = {name: code for code, (name, _, _) in DTYPES.items()}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(slots=True)
class TensorProto:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_data: bytes = b""
    float_data: list[float] = field(default_factory=list)
    int32_data: list[int] = field(default_factory=list)
    int64_data: list[int] = field(default_factory=list)
    double_data: list[float] = field(default_factory=list)
    external: bool = False


@dataclass(slots=True)
class AttributeProto:
    name: str = ""
    type: int = 0
    f: float = 0.0
    i: int = 0
    s: bytes = b""
    t: TensorProto | None = None
    floats: list[float] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    has_graph: bool = False


@dataclass(slots=True)
class NodeProto:
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, AttributeProto] = field(default_factory=dict)


@dataclass(slots=True)
class ValueInfo:
    name: str = ""
    elem_type: int = 0
    shape: list[int | str] | None = None  # None: rank unknown; str: a symbolic dimension


@dataclass(slots=True)
class GraphProto:
    name: str = ""
    nodes: list[NodeProto] = field(default_factory=list)
    initializers: list[TensorProto] = field(default_factory=list)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)


@dataclass(slots=True)
class ModelProto:
    ir_version: int = 0
    opsets: dict[str, int] = field(default_factory=dict)
    producer_name: str = ""
    graph: GraphProto | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class _Reader:
    """Iterates over (field number, wire type, value) of one message held in ``buf[start:end]``."""

    __slots__ = ("buf", "end", "pos", "what")

    def __init__(self, buf: memoryview, start: int, end: int, what: str) -> None:
        self.buf, self.pos, self.end, self.what = buf, start, end, what

    def varint(self) -> int:
        buf, pos, end = self.buf, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end:
                raise MalformedModel(f"{self.what}: truncated varint at byte {pos} (the file is cut short)")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 70:
                raise MalformedModel(f"{self.what}: varint longer than 10 bytes at byte {pos}")
        self.pos = pos
        return result

    def fields(self) -> list[tuple[int, int, int | tuple[int, int]]]:
        """Decode every field: varints and fixed values as ints, length-delimited ones as (start, end)."""
        out: list[tuple[int, int, int | tuple[int, int]]] = []
        while self.pos < self.end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise MalformedModel(f"{self.what}: field number 0 at byte {self.pos} "
                                     "(not a protobuf message)")
            value: int | tuple[int, int]
            if wire == _VARINT:
                value = self.varint()
            elif wire == _I64:
                value = self._fixed(8)
            elif wire == _I32:
                value = self._fixed(4)
            elif wire == _LEN:
                size = self.varint()
                start = self.pos
                if start + size > self.end:
                    raise MalformedModel(
                        f"{self.what}: field {number} claims {size} bytes but only {self.end - start} remain "
                        "(the file is truncated or corrupt)")
                self.pos = start + size
                value = (start, start + size)
            else:
                raise MalformedModel(f"{self.what}: unsupported wire type {wire} for field {number} "
                                     f"at byte {self.pos} (not an ONNX file?)")
            out.append((number, wire, value))
        return out

    def _fixed(self, size: int) -> int:
        if self.pos + size > self.end:
            raise MalformedModel(f"{self.what}: truncated fixed-width field at byte {self.pos}")
        value = int.from_bytes(self.buf[self.pos:self.pos + size], "little")
        self.pos += size
        return value


def _number(value: int | tuple[int, int]) -> int:
    if not isinstance(value, int):
        raise MalformedModel("a field that should hold a number holds bytes (corrupt file?)")
    return value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _expect(wire: int, want: int, what: str, number: int) -> None:
    if wire != want:
        raise MalformedModel(f"{what}: field {number} has wire type {wire}, expected {want} (corrupt file?)")


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.buf = memoryview(data)

    def _span(self, value: int | tuple[int, int]) -> tuple[int, int]:
        if not isinstance(value, tuple):
            raise MalformedModel("a field that should hold a message or string holds a number "
                                 "(corrupt file?)")
        return value

    def _str(self, value: int | tuple[int, int], what: str) -> str:
        start, end = self._span(value)
        try:
            return bytes(self.buf[start:end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedModel(f"{what}: a string field is not valid UTF-8 (corrupt file?)") from exc

    def _bytes(self, value: int | tuple[int, int]) -> bytes:
        start, end = self._span(value)
        return bytes(self.buf[start:end])

    def _ints(self, wire: int, value: int | tuple[int, int], what: str, signed: bool = True) -> list[int]:
        """A repeated integer field arrives packed (one span of varints) or as single varints."""
        if wire == _VARINT:
            value = _number(value)
            return [_signed64(value) if signed else value]
        _expect(wire, _LEN, what, 0)
        start, end = self._span(value)
        reader = _Reader(self.buf, start, end, what)
        out = []
        while reader.pos < reader.end:
            raw = reader.varint()
            out.append(_signed64(raw) if signed else raw)
        return out

    def _floats(self, wire: int, value: int | tuple[int, int], fmt: str, size: int, what: str) -> list[float]:
        if wire in (_I32, _I64):
            value = _number(value)
            return list(struct.unpack("<" + fmt, value.to_bytes(size, "little")))
        _expect(wire, _LEN, what, 0)
        start, end = self._span(value)
        if (end - start) % size:
            raise MalformedModel(f"{what}: packed {fmt} data of {end - start} bytes "
                                 f"is not a multiple of {size}")
        return list(struct.unpack(f"<{(end - start) // size}{fmt}", self.buf[start:end]))

    def model(self) -> ModelProto:
        what = "ModelProto"
        model = ModelProto()
        for number, wire, value in _Reader(self.buf, 0, len(self.buf), what).fields():
            if number == 1:
                _expect(wire, _VARINT, what, number)
                value = _number(value)
                model.ir_version = value
            elif number == 2:
                model.producer_name = self._str(value, what)
            elif number == 7:
                _expect(wire, _LEN, what, number)
                model.graph = self.graph(*self._span(value))
            elif number == 8:
                _expect(wire, _LEN, what, number)
                domain, version = self.opset(*self._span(value))
                model.opsets[domain] = version
            elif number == 14:
                _expect(wire, _LEN, what, number)
                key, val = self.string_pair(*self._span(value))
                model.metadata[key] = val
        if model.graph is None:
            raise MalformedModel("ModelProto has no graph (is this an ONNX model file?)")
        if model.ir_version <= 0:
            raise MalformedModel("ModelProto has no ir_version (is this an ONNX model file?)")
        return model

    def opset(self, start: int, end: int) -> tuple[str, int]:
        what = "OperatorSetIdProto"
        domain, version = "", 0
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            if number == 1:
                domain = self._str(value, what)
            elif number == 2:
                _expect(wire, _VARINT, what, number)
                value = _number(value)
                version = value
        return domain, version

    def string_pair(self, start: int, end: int) -> tuple[str, str]:
        what = "metadata_props"
        key = val = ""
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            _expect(wire, _LEN, what, number)
            if number == 1:
                key = self._str(value, what)
            elif number == 2:
                val = self._str(value, what)
        return key, val

    def graph(self, start: int, end: int) -> GraphProto:
        what = "GraphProto"
        graph = GraphProto()
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            if number in (1, 5, 11, 12, 15):
                _expect(wire, _LEN, what, number)
            if number == 1:
                graph.nodes.append(self.node(*self._span(value)))
            elif number == 2:
                graph.name = self._str(value, what)
            elif number == 5:
                graph.initializers.append(self.tensor(*self._span(value)))
            elif number == 11:
                graph.inputs.append(self.value_info(*self._span(value)))
            elif number == 12:
                graph.outputs.append(self.value_info(*self._span(value)))
            elif number == 15:
                raise UnsupportedModel("the graph has sparse initializers, "
                                       "which this interpreter does not read")
        return graph

    def node(self, start: int, end: int) -> NodeProto:
        what = "NodeProto"
        node = NodeProto()
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            if number == 1:
                node.inputs.append(self._str(value, what))
            elif number == 2:
                node.outputs.append(self._str(value, what))
            elif number == 3:
                node.name = self._str(value, what)
            elif number == 4:
                node.op_type = self._str(value, what)
            elif number == 7:
                node.domain = self._str(value, what)
            elif number == 5:
                _expect(wire, _LEN, what, number)
                attr = self.attribute(*self._span(value))
                node.attributes[attr.name] = attr
        if not node.op_type:
            raise MalformedModel(f"a node ({node.name or 'unnamed'}) has no op_type")
        return node

    def attribute(self, start: int, end: int) -> AttributeProto:
        what = "AttributeProto"
        attr = AttributeProto()
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            if number == 1:
                attr.name = self._str(value, what)
            elif number == 20:
                _expect(wire, _VARINT, what, number)
                value = _number(value)
                attr.type = value
            elif number == 2:
                attr.f = self._floats(wire, value, "f", 4, what)[0]
            elif number == 3:
                attr.i = self._ints(wire, value, what)[0]
            elif number == 4:
                attr.s = self._bytes(value)
            elif number == 5:
                attr.t = self.tensor(*self._span(value))
            elif number == 6:
                attr.has_graph = True
            elif number == 7:
                attr.floats.extend(self._floats(wire, value, "f", 4, what))
            elif number == 8:
                attr.ints.extend(self._ints(wire, value, what))
            elif number == 9:
                attr.strings.append(self._bytes(value))
        return attr

    def tensor(self, start: int, end: int) -> TensorProto:
        what = "TensorProto"
        tensor = TensorProto()
        for number, wire, value in _Reader(self.buf, start, end, what).fields():
            if number == 1:
                tensor.dims.extend(self._ints(wire, value, what))
            elif number == 2:
                _expect(wire, _VARINT, what, number)
                value = _number(value)
                tensor.data_type = value
            elif number == 8:
                tensor.name = self._str(value, what)
            elif number == 9:
                tensor.raw_data = self._bytes(value)
            elif number == 4:
                tensor.float_data.extend(self._floats(wire, value, "f", 4, what))
            elif number == 5:
                tensor.int32_data.extend(self._ints(wire, value, what))
            elif number == 7:
                tensor.int64_data.extend(self._ints(wire, value, what))
            elif number == 10:
                tensor.double_data.extend(self._floats(wire, value, "d", 8, what))
            elif number == 13:
                tensor.external = True
        if tensor.data_type not in DTYPES:
            raise UnsupportedModel(f"tensor {tensor.name!r} has data type {tensor.data_type}, "
                                   f"which this interpreter does not support")
        return tensor

    def value_info(self, start: int, end: int) -> ValueInfo:
        what = "ValueInfoProto"
        info = ValueInfo()
        for number, _wire, value in _Reader(self.buf, start, end, what).fields():
            if number == 1:
                info.name = self._str(value, what)
            elif number == 2:
                self.type_proto(info, *self._span(value))
        return info

    def type_proto(self, info: ValueInfo, start: int, end: int) -> None:
        for number, _wire, value in _Reader(self.buf, start, end, "TypeProto").fields():
            if number != 1:
                continue  # sequences, maps, optionals: not model inputs this interpreter handles
            for tnum, _twire, tval in _Reader(self.buf, *self._span(value), "TypeProto.Tensor").fields():
                if tnum == 1:
                    tval = _number(tval)
                    info.elem_type = tval
                elif tnum == 2:
                    info.shape = self.shape(*self._span(tval))

    def shape(self, start: int, end: int) -> list[int | str]:
        dims: list[int | str] = []
        for number, _wire, value in _Reader(self.buf, start, end, "TensorShapeProto").fields():
            if number != 1:
                continue
            dim: int | str = "?"
            for dnum, _dwire, dval in _Reader(self.buf, *self._span(value), "Dimension").fields():
                if dnum == 1:
                    dval = _number(dval)
                    dim = _signed64(dval)
                elif dnum == 2:
                    dim = self._str(dval, "Dimension")
            dims.append(dim)
        return dims


def parse_model(data: bytes) -> ModelProto:
    """Decode an ONNX file's bytes; raises ``MalformedModel`` or ``UnsupportedModel`` with the reason."""
    if not data:
        raise MalformedModel("the model file is empty")
    return _Decoder(data).model()
