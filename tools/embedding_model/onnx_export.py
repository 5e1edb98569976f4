"""The EfficientNet-Lite0 feature extractor as an ONNX graph, built with ``onnx.helper``.

Batch norm is folded into each convolution (inference only), TensorFlow's "SAME" padding
becomes each Conv's explicit, possibly asymmetric, ``pads``, and the classifier is
replaced by global average pooling and L2 normalisation, so the output is a unit-length
1280-dim embedding whose dot product is the cosine similarity. The batch dimension is
dynamic; the spatial size is fixed at build time (the padding depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "pixels"
OUTPUT_NAME = "embedding"
EMBEDDING_DIM = 1280
OPSET = 17
IR_VERSION = 8  # pinned so the file's bytes, and so its checksum, do not follow onnx's default
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class Block:
    """One MBConv block of the network (after expanding the stage repeats)."""

    index: int
    kernel: int
    stride: int
    expand: bool


# (repeats, kernel, first stride, expands) of EfficientNet-Lite0's seven stages.
_LITE0_STAGES = [(1, 3, 1, False), (2, 3, 2, True), (2, 5, 2, True), (3, 3, 2, True),
                 (3, 5, 1, True), (4, 5, 2, True), (1, 3, 1, True)]  # fmt: skip


def lite0_blocks() -> list[Block]:
    blocks: list[Block] = []
    for repeats, kernel, stride, expand in _LITE0_STAGES:
        for r in range(repeats):
            blocks.append(Block(len(blocks), kernel, stride if r == 0 else 1, expand))
    return blocks


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(size / stride), the odd pixel of padding at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _GraphBuilder:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names = 0

    def _name(self, hint: str) -> str:
        self._names += 1
        return f"{hint}_{self._names}"

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def conv_bn(
        self, x: str, size: int, conv: str, bn: str, *, stride: int = 1, depthwise: bool = False
    ) -> tuple[str, int]:
        """Conv followed by batch norm, folded into one Conv; returns (output, new size)."""
        w = self.weights[f"{conv}.weight"].astype(np.float64)
        gamma = self.weights[f"{bn}.weight"].astype(np.float64)
        beta = self.weights[f"{bn}.bias"].astype(np.float64)
        mean = self.weights[f"{bn}.running_mean"].astype(np.float64)
        var = self.weights[f"{bn}.running_var"].astype(np.float64)
        scale = gamma / np.sqrt(var + BN_EPSILON)
        folded_w = (w * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)
        kernel = w.shape[-1]
        begin, end = same_padding(size, kernel, stride)
        out = self._name(conv.replace(".", "_"))
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.constant(f"{conv}.w", folded_w), self.constant(f"{conv}.b", folded_b)],
                [out],
                name=out,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[begin, begin, end, end],
                group=w.shape[0] if depthwise else 1,
            )
        )
        return out, -(-size // stride)

    def relu6(self, x: str) -> str:
        out = self._name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "zero", "six"], [out], name=out))
        return out

    def add(self, a: str, b: str) -> str:
        out = self._name("residual")
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=out))
        return out

    def op(self, op_type: str, x: str, **attrs: int) -> str:
        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, [x], [out], name=out, **attrs))
        return out


def build_embedding_model(
    weights: dict[str, np.ndarray], input_size: int, metadata: dict[str, str]
) -> onnx.ModelProto:
    g = _GraphBuilder(weights)
    g.constant("zero", np.array(0.0, np.float32))
    g.constant("six", np.array(6.0, np.float32))

    x, size = g.conv_bn(INPUT_NAME, input_size, "_conv_stem", "_bn0", stride=2)
    x = g.relu6(x)
    for block in lite0_blocks():
        p = f"_blocks.{block.index}"
        inputs, in_size = x, size
        if block.expand:
            x, _ = g.conv_bn(x, size, f"{p}._expand_conv", f"{p}._bn0")
            x = g.relu6(x)
        x, size = g.conv_bn(
            x, size, f"{p}._depthwise_conv", f"{p}._bn1", stride=block.stride, depthwise=True
        )
        x = g.relu6(x)
        x, _ = g.conv_bn(x, size, f"{p}._project_conv", f"{p}._bn2")
        first = f"{p}._expand_conv" if block.expand else f"{p}._depthwise_conv"
        in_channels = weights[f"{first}.weight"].shape[1 if block.expand else 0]
        out_channels = weights[f"{p}._project_conv.weight"].shape[0]
        if block.stride == 1 and in_channels == out_channels and size == in_size:
            x = g.add(x, inputs)
    x, size = g.conv_bn(x, size, "_conv_head", "_bn1")
    x = g.relu6(x)
    x = g.op("GlobalAveragePool", x)
    x = g.op("Flatten", x, axis=1)
    g.nodes.append(helper.make_node("LpNormalization", [x], [OUTPUT_NAME], axis=1, p=2))

    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0_embedding",
        [helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, ["batch", 3, input_size, input_size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", EMBEDDING_DIM])],
        initializer=g.initializers,
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="imgflow tools/build_model.py",
        producer_version="1",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model
