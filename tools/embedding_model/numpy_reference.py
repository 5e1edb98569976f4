"""EfficientNet-Lite0 forward pass in plain numpy: the yardstick for the ONNX export.

Deliberately shares no code with ``onnx_export.py``: its own block table, its own
TensorFlow-"SAME" padding arithmetic, batch norm applied as written (not folded into the
convolutions), ReLU6 and global average pooling. A test runs both on real photographs and
compares, so a mistake in either shows up as a disagreement. Slow (float64, ~1 s per
image) and meant only for tests.
"""

from __future__ import annotations

import numpy as np

# (repeats, kernel, stride, expand ratio, output channels) of the seven MBConv stages,
# from the EfficientNet-Lite0 definition (no squeeze-and-excitation, ReLU6).
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
BN_EPSILON = 1e-3


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    top, bottom = _same_pads(x.shape[1], kernel, stride)
    left, right = _same_pads(x.shape[2], kernel, stride)
    return np.pad(x, ((0, 0), (top, bottom), (left, right)))


def _batch_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    scale = w[f"{name}.weight"] / np.sqrt(w[f"{name}.running_var"] + BN_EPSILON)
    shift = w[f"{name}.bias"] - w[f"{name}.running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _pointwise(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    c, h, wd = x.shape
    return (weight[:, :, 0, 0] @ x.reshape(c, h * wd)).reshape(-1, h, wd)


def _depthwise(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    k = weight.shape[-1]
    padded = _pad(x, k, stride)
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], oh, ow))
    for i in range(k):
        for j in range(k):
            window = padded[:, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += window * weight[:, 0, i, j][:, None, None]
    return out


def _full_conv(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    k = weight.shape[-1]
    padded = _pad(x, k, stride)
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((weight.shape[0], oh, ow))
    for i in range(k):
        for j in range(k):
            window = padded[:, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += np.einsum("oc,chw->ohw", weight[:, :, i, j], window)
    return out


def features(image_chw: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """Pooled 1280-dim features of one normalised (3, H, W) image, before L2 norm."""
    x = image_chw.astype(np.float64)
    w = {k: v.astype(np.float64) for k, v in w.items()}
    x = _relu6(_batch_norm(_full_conv(x, w["_conv_stem.weight"], 2), w, "_bn0"))
    index = 0
    for repeats, kernel, stride, expand, _channels in STAGES:
        for r in range(repeats):
            p = f"_blocks.{index}"
            inputs = x
            if w[f"{p}._depthwise_conv.weight"].shape[-1] != kernel:
                raise ValueError(f"{p}: the weights are not EfficientNet-Lite0's")
            if expand != 1:
                x = _relu6(
                    _batch_norm(_pointwise(x, w[f"{p}._expand_conv.weight"]), w, f"{p}._bn0")
                )
            s = stride if r == 0 else 1
            x = _relu6(
                _batch_norm(_depthwise(x, w[f"{p}._depthwise_conv.weight"], s), w, f"{p}._bn1")
            )
            x = _batch_norm(_pointwise(x, w[f"{p}._project_conv.weight"]), w, f"{p}._bn2")
            if s == 1 and inputs.shape == x.shape:
                x = x + inputs
            index += 1
    x = _relu6(_batch_norm(_pointwise(x, w["_conv_head.weight"]), w, "_bn1"))
    return x.mean(axis=(1, 2))


def embedding(image_chw: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    f = features(image_chw, w)
    return f / np.linalg.norm(f)


def logits(image_chw: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """ImageNet class scores: proves the weights were read and wired correctly."""
    f = features(image_chw, w)
    return w["_fc.weight"].astype(np.float64) @ f + w["_fc.bias"]
