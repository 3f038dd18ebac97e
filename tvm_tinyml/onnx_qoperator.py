"""QOperator ONNX models to QDQ form, at the ONNX-proto level, before TVM imports them.

`onnxruntime.quantization.quantize_static(quant_format=QuantFormat.QOperator)` writes integer
operators (QLinearConv, QLinearMatMul and, in the `com.microsoft` domain, QGemm, QLinearAdd,
QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearAveragePool, QLinearGlobalAveragePool,
QLinearConcat, QLinearSoftmax). Each one means: dequantize its integer inputs, run the float
operator, quantize the result (onnxruntime's reference semantics). `to_qdq` writes exactly that,
DequantizeLinear -> float op -> QuantizeLinear, so the QDQ path (QuantizeRealize) compiles it.
An int32 bias is dequantized with scale input scale x weight scale (x alpha for QGemm), zero point 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import UnsupportedOperatorError

_MS = "com.microsoft"


@dataclass(frozen=True)
class _Form:
    """Where a QOperator node keeps its operands: (tensor, scale, zero point) triples at
    `inputs` (None: a variadic tail of triples from `inputs[0]` on, QLinearConcat), the output's
    scale and zero point at `output`, an int32 bias at `bias`; `float_op` is the float operator
    and `weight_axis` the DequantizeLinear axis of a per-channel second operand (QGemm: from transB)."""

    float_op: str
    inputs: tuple | None
    output: int | None
    bias: int | None = None
    weight_axis: int = 0
    variadic_from: int = 0


_FORMS = {
    "QLinearConv": _Form("Conv", (0, 3), 6, bias=8),
    "QLinearMatMul": _Form("MatMul", (0, 3), 6, weight_axis=-1),
    "QGemm": _Form("Gemm", (0, 3), 7, bias=6),
    "QLinearAdd": _Form("Add", (0, 3), 6),
    "QLinearMul": _Form("Mul", (0, 3), 6),
    "QLinearSigmoid": _Form("Sigmoid", (0,), 3),
    "QLinearLeakyRelu": _Form("LeakyRelu", (0,), 3),
    "QLinearAveragePool": _Form("AveragePool", (0,), 3),
    "QLinearGlobalAveragePool": _Form("GlobalAveragePool", (0,), 3),
    "QLinearSoftmax": _Form("Softmax", (0,), 3),
    "QLinearConcat": _Form("Concat", None, 0, variadic_from=2),
}
_DROPPED_ATTRIBUTES = {"channels_last", "opset"}  # QOperator-only attributes (must be their defaults)


def is_qoperator(node: onnx.NodeProto) -> bool:
    """Whether `node` is a quantized integer operator (QLinear*, or any com.microsoft Q* op)."""
    return node.op_type.startswith("QLinear") or (node.domain == _MS and node.op_type.startswith("Q"))


def to_qdq(model: onnx.ModelProto, path: str) -> onnx.ModelProto:
    """A copy of `model` with every QOperator node rewritten to DequantizeLinear -> op -> QuantizeLinear."""
    if not any(is_qoperator(n) for n in model.graph.node):
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    nodes = []
    for index, node in enumerate(graph.node):
        if not is_qoperator(node):
            nodes.append(node)
            continue
        form = _FORMS.get(node.op_type)
        if form is None:
            raise UnsupportedOperatorError(f"{path}: node #{index} ({node.op_type}) is not supported")
        nodes.extend(_Rewrite(node, index, form, constants, graph, path).nodes())
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(n.domain == _MS for n in nodes):
        kept = [o for o in model.opset_import if o.domain != _MS]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return model


class _Rewrite:
    """The QDQ nodes of one QOperator node."""

    def __init__(self, node, index: int, form: _Form, constants: dict, graph, path: str) -> None:
        self.node, self.index, self.form = node, index, form
        self.constants, self.graph, self.path = constants, graph, path
        self.out: list = []

    def _refuse(self, problem: str):
        raise UnsupportedOperatorError(f"{self.path}: node #{self.index} ({self.node.op_type}) {problem}")

    def _arg(self, position: int) -> str:
        names = self.node.input
        return names[position] if position < len(names) else ""

    def _name(self, suffix: str) -> str:
        return f"{self.node.output[0]}__qdq_{self.index}_{suffix}"

    def _dequantize(self, triple: tuple[str, str, str], axis: int | None, suffix: str) -> str:
        tensor, scale, zero_point = triple
        out = self._name(suffix)
        inputs = [tensor, scale] + ([zero_point] if zero_point else [])
        attrs = {"axis": axis} if axis is not None and self._size(scale) > 1 else {}
        self.out.append(helper.make_node("DequantizeLinear", inputs, [out], **attrs))
        return out

    def _size(self, name: str) -> int:
        tensor = self.constants.get(name)
        return 1 if tensor is None else int(np.prod(tensor.dims, dtype=np.int64))

    def _value(self, name: str) -> np.ndarray:
        if name not in self.constants:
            self._refuse(f"needs constant quantization scales ({name} is not an initializer)")
        return numpy_helper.to_array(self.constants[name])

    def _bias(self, name: str, x_scale: str, w_scale: str, alpha: float) -> str:
        """DequantizeLinear of the int32 bias with scale alpha * x_scale * w_scale, zero point 0."""
        scale = (np.float32(alpha) * self._value(x_scale).astype(np.float32) * self._value(w_scale).astype(np.float32)).astype(np.float32)
        scale_name = self._name("bias_scale")
        tensor = numpy_helper.from_array(scale.reshape(-1) if scale.size > 1 else scale.reshape(()), scale_name)
        self.graph.initializer.append(tensor)
        self.constants[scale_name] = tensor
        return self._dequantize((name, scale_name, ""), 0, "bias")

    def _triples(self) -> list[tuple[str, str, str]]:
        form = self.form
        if form.inputs is None:
            starts = range(form.variadic_from, len(self.node.input), 3)
        else:
            starts = form.inputs
        return [(self._arg(s), self._arg(s + 1), self._arg(s + 2)) for s in starts]

    def _attributes(self) -> dict:
        attrs = {}
        for a in self.node.attribute:
            value = helper.get_attribute_value(a)
            if a.name in _DROPPED_ATTRIBUTES:
                if a.name == "channels_last" and value:
                    self._refuse("with channels_last=1 is not supported")
                continue
            attrs[a.name] = value
        return attrs

    def nodes(self) -> list:
        form, attrs = self.form, self._attributes()
        triples = self._triples()
        weight_axis = (0 if attrs.get("transB", 0) else 1) if form.float_op == "Gemm" else form.weight_axis
        floats = [self._dequantize(t, weight_axis if i == 1 else None, f"in{i}") for i, t in enumerate(triples)]
        if form.bias is not None and self._arg(form.bias):
            alpha = float(attrs.get("alpha", 1.0)) if form.float_op == "Gemm" else 1.0
            floats.append(self._bias(self._arg(form.bias), triples[0][1], triples[1][1], alpha))
        if form.float_op == "Gemm" and len(floats) > 2:
            attrs["beta"] = 1.0  # the bias is already scaled by alpha (onnxruntime's QGemm)
        out_scale = self._arg(form.output)
        real = self._name("float") if out_scale else self.node.output[0]
        self.out.append(helper.make_node(form.float_op, floats, [real], **attrs))
        if out_scale:
            zero_point = self._arg(form.output + 1)
            inputs = [real, out_scale] + ([zero_point] if zero_point else [])
            self.out.append(helper.make_node("QuantizeLinear", inputs, [self.node.output[0]]))
        return self.out

