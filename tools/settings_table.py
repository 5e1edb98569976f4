"""The Markdown table of every IMGFLOW_* setting, kept in the docs between markers.

    .venv/bin/python tools/settings_table.py          # print it
    .venv/bin/python tools/settings_table.py --write  # refresh docs/operating/settings.md

A test compares the page with this output, so the table cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from imgflow_contracts.settings import ENV_PREFIX, CommonSettings, WorkerSettings
from imgflow_deduper.settings import DedupeSettings
from imgflow_hasher.settings import HasherSettings
from imgflow_thumbnailer.settings import ThumbnailerSettings
from imgflow_upload_api.settings import ApiSettings
from imgflow_webhook_sender.settings import SenderSettings

# (heading, settings class, fields to show: only those the class adds to its base)
SECTIONS: list[tuple[str, type[BaseSettings], type[BaseSettings] | None]] = [
    ("every process", CommonSettings, None),
    ("upload API", ApiSettings, CommonSettings),
    ("every worker", WorkerSettings, CommonSettings),
    ("thumbnailer", ThumbnailerSettings, WorkerSettings),
    ("hasher", HasherSettings, WorkerSettings),
    ("deduper", DedupeSettings, WorkerSettings),
    ("webhook sender", SenderSettings, CommonSettings),
]


def _default(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        return "(local-only secret)"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def settings_table() -> str:
    lines = ["| variable | used by | default | meaning |", "| --- | --- | --- | --- |"]
    for heading, cls, base in SECTIONS:
        inherited = set(base.model_fields) if base else set()
        for name, field in cls.model_fields.items():
            # Inherited fields are listed once, under their base, unless overridden here.
            if name in inherited and field.default == base.model_fields[name].default:
                continue
            env = f"{ENV_PREFIX}{name.upper()}"
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{env}` | {heading} | `{_default(field.default)}` | {meaning} |")
    return "\n".join(lines)


PAGE = Path(__file__).resolve().parent.parent / "docs" / "operating" / "settings.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def page_with_table(page: str) -> str:
    before, rest = page.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{settings_table()}\n{END}{after}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        PAGE.write_text(page_with_table(PAGE.read_text()))
    else:
        print(settings_table())
