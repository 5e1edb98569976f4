"""Models that take raw uint8 NHWC pixels (SSCD's exports) run behind the same Encoder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from imgflow_deduper.encoder import CPU, Encoder
from imgflow_deduper.model_input import InputMismatchError, ModelInput
from imgflow_deduper.pixels import Normalisation, view_tensors

RAW = Normalisation.of(32, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))


def mean_colour_model(path: Path) -> Path:
    """A uint8 (N, H, W, 3) model whose "embedding" is each image's mean R, G, B on 0-255:
    enough to see that pixels arrive as bytes, in NHWC order, unscaled."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["pixels"], ["embedding"], axes=[1, 2], keepdims=0),
        ],
        "mean-colour",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "h", "w", 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_uint8_model_gets_the_raw_pixels_in_nhwc(tmp_path: Path) -> None:
    encoder = Encoder(str(mean_colour_model(tmp_path / "m.onnx")), [CPU], threads=1)
    assert encoder.input == ModelInput(uint8_nhwc=True)
    pixels = view_tensors(jpeg((200, 40, 90)), RAW, with_sub_views=True)
    out = encoder.run(pixels)
    assert out.shape == (6, 3)  # the whole frame and five sub-views
    assert np.allclose(out, [200, 40, 90], atol=2)  # JPEG's rounding, nothing more


def test_float_models_get_float_nchw() -> None:
    feed = ModelInput.of("tensor(float)", ["batch", 3, 96, 96]).feed
    pixels = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    out = feed(pixels)
    assert out.dtype == np.float32
    assert out.shape == (2, 3, 4, 4)


def test_normalised_pixels_are_refused_by_a_uint8_model() -> None:
    feed = ModelInput.of("tensor(uint8)", ["batch", "h", "w", 3]).feed
    imagenet = Normalisation.of(4, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = view_tensors(jpeg((10, 20, 30)), imagenet, with_sub_views=False)
    with pytest.raises(InputMismatchError, match="IMGFLOW_DEDUPE_STD"):
        feed(pixels)


def test_a_uint8_input_must_be_nhwc() -> None:
    with pytest.raises(InputMismatchError):
        ModelInput.of("tensor(uint8)", ["batch", 3, "h", "w"])
