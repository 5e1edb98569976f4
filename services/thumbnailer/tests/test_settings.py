import pytest
from pydantic import ValidationError

from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.geometry import Fit
from imgflow_thumbnailer.settings import ThumbnailerSettings


def test_defaults_are_the_brief():
    settings = ThumbnailerSettings()
    assert settings.thumbnail_sizes == [150, 300, 600]
    assert settings.thumbnail_fit is Fit.INSIDE
    assert settings.encode_options() == EncodeOptions()
    assert settings.encode_options().format is OutputFormat.WEBP


def test_environment_chooses_fit_format_and_effort(monkeypatch):
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_SIZES", "[600, 64, 64]")
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_FIT", "cover")
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_FORMAT", "avif")
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_AVIF_SPEED", "10")
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_WEBP_METHOD", "2")
    settings = ThumbnailerSettings()
    assert settings.thumbnail_sizes == [64, 600]
    assert settings.thumbnail_fit is Fit.COVER
    assert settings.encode_options() == EncodeOptions(
        format=OutputFormat.AVIF, quality=82, webp_method=2, avif_speed=10
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMGFLOW_THUMBNAIL_FORMAT", "gif"),
        ("IMGFLOW_THUMBNAIL_FIT", "stretch"),
        ("IMGFLOW_THUMBNAIL_WEBP_METHOD", "7"),
        ("IMGFLOW_THUMBNAIL_SIZES", "[0]"),
    ],
)
def test_nonsense_is_refused_at_start(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        ThumbnailerSettings()


def test_the_webp_effort_is_chosen_per_size(monkeypatch):
    assert ThumbnailerSettings().encode_options().for_size(600).webp_method == 2
    assert ThumbnailerSettings().encode_options().for_size(150).webp_method == 4
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_WEBP_METHOD_BY_SIZE", '{"150": 6}')
    options = ThumbnailerSettings().encode_options()
    assert [options.for_size(s).webp_method for s in (150, 300, 600)] == [6, 4, 4]
    monkeypatch.setenv("IMGFLOW_THUMBNAIL_WEBP_METHOD_BY_SIZE", '{"150": 9}')
    with pytest.raises(ValidationError):
        ThumbnailerSettings()
