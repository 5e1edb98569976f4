"""The development secrets of `make run` (the API key, Flower's password): chosen by the
environment, else generated once and kept per data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imgflow_localstack.system import (
    BOOTSTRAP_KEY_FILE,
    BOOTSTRAP_KEY_VARIABLE,
    FLOWER_PASSWORD_FILE,
    FLOWER_PASSWORD_VARIABLE,
    bootstrap_api_key,
    flower_password,
)


def test_a_generated_key_survives_restarts_and_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BOOTSTRAP_KEY_VARIABLE, raising=False)
    first = bootstrap_api_key(tmp_path)

    assert first.startswith("imgf_") and len(first) > 40
    assert bootstrap_api_key(tmp_path) == first
    assert stat.S_IMODE((tmp_path / BOOTSTRAP_KEY_FILE).stat().st_mode) == 0o600
    assert bootstrap_api_key(tmp_path / "elsewhere") != first


def test_the_environment_chooses_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOTSTRAP_KEY_VARIABLE, "imgf_chosen-by-the-developer-0123456789")
    assert bootstrap_api_key(tmp_path) == "imgf_chosen-by-the-developer-0123456789"
    assert not (tmp_path / BOOTSTRAP_KEY_FILE).exists()


def test_flowers_password_is_kept_per_data_dir_or_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FLOWER_PASSWORD_VARIABLE, raising=False)
    first = flower_password(tmp_path)
    assert len(first) >= 40 and flower_password(tmp_path) == first
    assert stat.S_IMODE((tmp_path / FLOWER_PASSWORD_FILE).stat().st_mode) == 0o600
    assert first != bootstrap_api_key(tmp_path)

    monkeypatch.setenv(FLOWER_PASSWORD_VARIABLE, "chosen-flower-password")
    assert flower_password(tmp_path / "other") == "chosen-flower-password"
    assert not (tmp_path / "other" / FLOWER_PASSWORD_FILE).exists()
