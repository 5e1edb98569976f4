import pytest

from imgflow_thumbnailer.geometry import Fit, crop_box, fit_inside, target_size


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((4000, 3000), 600, (600, 450)),
        ((3000, 4000), 150, (112, 150)),
        ((100, 80), 600, (100, 80)),
        ((10000, 10), 300, (300, 1)),
        ((10, 10000), 150, (1, 150)),
    ],
)
def test_fit_inside_keeps_aspect_and_never_upscales(size, box, expected):
    assert fit_inside(*size, box) == expected


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((4000, 3000), 600, (600, 600)),
        ((3000, 4000), 150, (150, 150)),
        ((500, 120), 300, (120, 120)),  # never upscaled: the short side bounds the square
        ((6000, 20), 150, (20, 20)),
    ],
)
def test_cover_is_a_square_no_larger_than_the_short_side(size, box, expected):
    assert target_size(*size, box, Fit.COVER) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((800, 400), (200, 0, 600, 400)),
        ((400, 800), (0, 200, 400, 600)),
        ((300, 300), (0, 0, 300, 300)),
    ],
)
def test_cover_crops_the_centred_square(size, expected):
    assert crop_box(*size, Fit.COVER) == expected


def test_inside_shows_everything():
    assert crop_box(800, 400, Fit.INSIDE) == (0, 0, 800, 400)
