"""The upload API's OpenAPI document, checked in as services/upload-api/openapi.json.

    .venv/bin/python tools/openapi.py          # print it
    .venv/bin/python tools/openapi.py --write  # refresh the checked-in file

Built from the app itself (no server, no database: the lifespan never runs), with the
settings' defaults so the environment cannot change it; pretty-printed with sorted keys so
a diff shows only what changed. A test compares the file with this output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from imgflow_upload_api.app import create_app
from imgflow_upload_api.settings import ApiSettings

SPEC = Path(__file__).resolve().parent.parent / "services" / "upload-api" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    app = create_app(ApiSettings.model_construct(), configure_process=False)
    return app.openapi()


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        SPEC.write_text(openapi_json())
        print(f"wrote {SPEC}")
    elif not sys.argv[1:]:
        print(openapi_json(), end="")
    else:
        sys.exit("usage: tools/openapi.py [--write]")
