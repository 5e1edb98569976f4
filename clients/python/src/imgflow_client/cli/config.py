"""Where the command finds the server and the key: the environment, else a config file.

The key is never a command-line option, so it stays out of shell history and process
lists: ``IMGFLOW_API_KEY``, or ``imgflow login`` which asks for it and keeps it in
``<config dir>/imgflow/config.toml`` readable by the user alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

URL_VARIABLE = "IMGFLOW_URL"
KEY_VARIABLE = "IMGFLOW_API_KEY"
CONFIG_VARIABLE = "IMGFLOW_CONFIG"
STATE_VARIABLE = "IMGFLOW_STATE_DIR"
DEFAULT_URL = "http://127.0.0.1:8000"  # what `make run` serves


class ConfigError(Exception):
    """The configuration is missing or unreadable; the message says what to do."""


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None
    config_path: Path

    @property
    def account(self) -> str:
        """Names this server and key in the state file without storing the key."""
        material = f"{self.url}\n{self.api_key or ''}".encode()
        return hashlib.sha256(material).hexdigest()[:32]

    def require_key(self) -> str:
        if not self.api_key:
            raise ConfigError(
                f"no API key: set {KEY_VARIABLE}, or run `imgflow login` to keep one in "
                f"{self.config_path}"
            )
        return self.api_key


def config_path() -> Path:
    if explicit := os.environ.get(CONFIG_VARIABLE):
        return Path(explicit)
    return platformdirs.user_config_path("imgflow") / "config.toml"


def state_dir() -> Path:
    if explicit := os.environ.get(STATE_VARIABLE):
        return Path(explicit)
    return platformdirs.user_state_path("imgflow")


def load(url_option: str | None = None) -> Settings:
    path = config_path()
    stored: dict[str, object] = {}
    if path.exists():
        try:
            stored = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    url = url_option or os.environ.get(URL_VARIABLE) or str(stored.get("url") or DEFAULT_URL)
    key = os.environ.get(KEY_VARIABLE) or stored.get("api_key")
    return Settings(url.rstrip("/"), str(key) if key else None, path)


def save(url: str, api_key: str) -> Path:
    """Write the config file, readable and writable by its owner only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON strings are valid TOML basic strings.
    text = f"url = {json.dumps(url)}\napi_key = {json.dumps(api_key)}\n"
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temp, path)
    return path
