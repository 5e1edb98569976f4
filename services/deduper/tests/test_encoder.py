"""The ONNX Runtime session: provider choice, threads, batching and mirror invariance."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from imgflow_deduper.encoder import (
    CPU,
    CUDA,
    Encoder,
    ModelMissingError,
    choose_providers,
    cpu_share,
    embed_views,
)
from imgflow_deduper.pixels import Normalisation, bytes_to_tensor


def test_cuda_first_when_the_runtime_has_it() -> None:
    preferred = [CUDA, CPU]
    assert choose_providers(preferred, ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(preferred, ["AzureExecutionProvider", CPU]) == [CPU]
    # CPU is always the floor, even when the preference list forgets it
    assert choose_providers([CUDA], [CPU]) == [CPU]


def test_threads_default_to_the_cpu_share() -> None:
    share = cpu_share()
    assert 1 <= share <= len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def encoder(model_path: Path) -> Encoder:
    return Encoder(str(model_path), [CUDA, CPU])


def test_the_choice_is_logged(model_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="imgflow_deduper.encoder"):
        loaded = Encoder(str(model_path), [CUDA, CPU], threads=1)
    assert loaded.info.providers[-1] == CPU
    assert loaded.info.threads == 1
    assert loaded.info.dim == 1280
    assert "providers ['CPUExecutionProvider']" in caplog.text or "CUDA" in caplog.text


def test_a_batch_gives_the_same_vectors_as_one_at_a_time(encoder: Encoder) -> None:
    rng = np.random.default_rng(5)
    batch = rng.normal(size=(3, 3, 96, 96)).astype(np.float32)
    together = encoder.embed(batch)
    one_by_one = np.concatenate([encoder.embed(x) for x in batch])
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_mirror_invariance_makes_a_flipped_image_identical(encoder: Encoder) -> None:
    rng = np.random.default_rng(6)
    image = rng.normal(size=(3, 96, 96)).astype(np.float32)
    mirrored = image[:, :, ::-1]
    plain = encoder.embed(np.stack([image, mirrored]))
    invariant = encoder.embed(np.stack([image, mirrored]), mirror_invariant=True)
    assert float(plain[0] @ plain[1]) < 0.999
    assert float(invariant[0] @ invariant[1]) == pytest.approx(1.0, abs=1e-5)


def test_views_in_one_batch_equal_the_whole_with_its_mirror_and_each_view(
    encoder: Encoder,
) -> None:
    pixels = np.random.default_rng(7).normal(size=(6, 3, 96, 96)).astype(np.float32)

    whole, views = embed_views(encoder, pixels, mirror_invariant=True)

    assert np.allclose(whole, encoder.embed(pixels[0], mirror_invariant=True)[0], atol=1e-5)
    assert np.allclose(views, encoder.embed(pixels[1:]), atol=1e-5)
    assert views.shape == (5, 1280)
    plain, _ = embed_views(encoder, pixels, mirror_invariant=False)
    assert np.allclose(plain, encoder.embed(pixels[0])[0], atol=1e-5)


def test_idle_inference_threads_sleep_instead_of_spinning(encoder: Encoder) -> None:
    # Spinning threads burn CPU the other workers on the node need.
    options = encoder.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_missing_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="make model"):
        Encoder(str(tmp_path / "absent.onnx"), [CPU])


def test_the_low_pass_brings_a_resized_copy_closer(encoder: Encoder) -> None:
    photo = Image.fromarray(skimage.data.coffee())
    copies = []
    for image in (photo, photo.reduce(3)):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=60)
        copies.append(out.getvalue())

    def cosine(norm: Normalisation) -> float:
        a, b = (encoder.embed(bytes_to_tensor(c, norm))[0] for c in copies)
        return float(a @ b)

    sharp = Normalisation.of(96, [0.498] * 3, [0.502] * 3)
    soft = Normalisation.of(96, [0.498] * 3, [0.502] * 3, detail=48)
    assert cosine(soft) > cosine(sharp)
