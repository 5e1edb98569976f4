"""The converted ONNX model against an independent numpy forward pass, on real photos."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import skimage.data
from PIL import Image

from imgflow_deduper.encoder import Encoder
from imgflow_deduper.pixels import Normalisation, to_tensor
from tools.build_model import INPUT_SIZE, MODEL_SHA256, WEIGHTS_SHA256, sha256_of, weights_path
from tools.embedding_model import numpy_reference
from tools.embedding_model.torch_legacy import load_legacy_state_dict

NORM = Normalisation.of(INPUT_SIZE, [0.498] * 3, [0.502] * 3)
# ImageNet's own size, where the classifier is known to be right.
IMAGENET = Normalisation.of(224, [0.498] * 3, [0.502] * 3)
# ImageNet classes: 281-285 are the domestic cats, 967 is espresso.
PHOTOS = {"chelsea": range(281, 286), "coffee": range(967, 968)}


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return load_legacy_state_dict(weights_path())


def _pixels(name: str, norm: Normalisation = NORM) -> np.ndarray:
    return to_tensor(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"), norm)


def test_the_files_are_the_pinned_ones(model_path: Path) -> None:
    assert sha256_of(weights_path()) == WEIGHTS_SHA256
    assert sha256_of(model_path) == MODEL_SHA256
    model = onnx.load(str(model_path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["imgflow.source_sha256"] == WEIGHTS_SHA256
    assert meta["imgflow.input_size"] == str(INPUT_SIZE) == "96"


@pytest.mark.parametrize("photo", [*PHOTOS, "astronaut"])
def test_onnx_embedding_equals_the_numpy_reference(
    photo: str, model_path: Path, weights: dict[str, np.ndarray]
) -> None:
    pixels = _pixels(photo)
    onnx_vector = Encoder(str(model_path), ["CPUExecutionProvider"], threads=1).embed(pixels)[0]
    reference = numpy_reference.embedding(pixels, weights)

    assert onnx_vector.shape == (1280,)
    assert np.linalg.norm(onnx_vector) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(onnx_vector - reference).max() < 1e-5


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_the_weights_still_classify_imagenet_photos(
    photo: str, weights: dict[str, np.ndarray]
) -> None:
    # Reading the .pth wrongly (strides, layout, padding) would not keep these right.
    top = int(np.argmax(numpy_reference.logits(_pixels(photo, IMAGENET), weights)))
    assert top in PHOTOS[photo]


def test_the_weights_reader_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("owned",))

    path = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, Evil()):
        pickle.dump(part, buffer, protocol=2)
    path.write_bytes(buffer.getvalue())

    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load .*print"):
        load_legacy_state_dict(path)
