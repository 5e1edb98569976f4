"""Schemathesis hooks for the contract test: keep every webhook it registers on loopback.

The fuzzer makes up webhook URLs, and the dispatcher would POST deliveries to them: any
host on any network. A URL the contract accepts is pointed at the discard port of this
machine before it is sent (its path kept); a URL it refuses is sent as generated, since
the API refuses it and never delivers to it.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from imgflow_upload_api.webhooks.service import MAX_URL_LENGTH, URL_PATTERN

LOOPBACK = "http://127.0.0.1:9"


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if case.method != "POST" or case.path != "/v1/webhooks" or not isinstance(case.body, dict):
        return
    url = case.body.get("url")
    if isinstance(url, str) and re.fullmatch(URL_PATTERN, url):
        path = re.sub(r"^https?://[^/?#]*", "", url)
        rewritten = LOOPBACK + (path if path.startswith(("/", "?", "#")) else "/")
        case.body["url"] = rewritten[:MAX_URL_LENGTH]
