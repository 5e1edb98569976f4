import hashlib
import io

import pytest
from PIL import Image

from imgflow_hasher.analysis import analyse


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def test_facts_come_from_the_bytes():
    data = _png(321, 123, "LA")
    facts = analyse(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert (facts.width, facts.height, facts.format, facts.mode) == (321, 123, "png", "LA")
    assert facts.byte_size == len(data)
    assert facts.frames == 1


def test_animated_gif_counts_frames():
    frames = [Image.new("RGB", (20, 10), (i * 80, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert analyse(out.getvalue()).frames == 3


def test_truncated_png_is_refused():
    data = _png(300, 300)
    with pytest.raises((OSError, SyntaxError)):
        analyse(data[: len(data) // 2])
