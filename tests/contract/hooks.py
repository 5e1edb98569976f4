"""Schemathesis hooks for the contract test.

``before_call`` keeps every webhook it registers on loopback: the fuzzer makes up webhook
URLs, and the dispatcher would POST deliveries to them, any host on any network. A URL the
contract accepts is pointed at the discard port of this machine before it is sent (its
path kept); a URL it refuses is sent as generated, since the API never delivers to it.

``inherent_refusals_only`` narrows what schemathesis.toml allows: a schema-valid request
may be refused only by the problem codes below, each said in its operation's description.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from imgflow_upload_api.webhooks.service import MAX_URL_LENGTH, URL_PATTERN

LOOPBACK = "http://127.0.0.1:9"

# Refusals of schema-valid requests decided by more than their shape: operationId ->
# status -> the problem codes that may come with it. schemathesis.toml allows exactly these
# statuses beyond schemathesis's defaults (tests/contract/test_contract.py checks that).
INHERENT_REFUSALS: dict[str, dict[int, frozenset[str]]] = {
    # The bytes are an image only if their content says so; the deployment's size limit;
    # an idempotency key already used for other bytes.
    "uploadImage": {
        413: frozenset({"payload-too-large"}),
        415: frozenset({"unsupported-format"}),
        422: frozenset(
            {"corrupt-image", "truncated-image", "image-too-large", "idempotency-key-reused"}
        ),
    },
    # Completing checks the bytes stored, not the request.
    "complete": {
        410: frozenset({"upload-expired"}),
        415: frozenset({"unsupported-format"}),
        422: frozenset(
            {
                "size-mismatch",
                "checksum-mismatch",
                "corrupt-image",
                "truncated-image",
                "image-too-large",
            }
        ),
    },
    # A cursor is opaque and bound to its tenant and listing by a check digest.
    "listImages": {400: frozenset({"bad-cursor"})},
    "listGroups": {400: frozenset({"bad-cursor"})},
    # Decided by the group's members, not the request's shape.
    "resolveGroup": {422: frozenset({"not-a-member", "bad-resolution"})},
    "listStacks": {400: frozenset({"bad-cursor"})},
    "resolveStack": {422: frozenset({"not-a-member", "bad-resolution"})},
}


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if case.method != "POST" or case.path != "/v1/webhooks" or not isinstance(case.body, dict):
        return
    url = case.body.get("url")
    if isinstance(url, str) and re.fullmatch(URL_PATTERN, url):
        path = re.sub(r"^https?://[^/?#]*", "", url)
        rewritten = LOOPBACK + (path if path.startswith(("/", "?", "#")) else "/")
        case.body["url"] = rewritten[:MAX_URL_LENGTH]


@schemathesis.check
def inherent_refusals_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request answered with a status INHERENT_REFUSALS lists must carry
    one of the problem codes listed for it: any other refusal is a finding."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    operation_id = case.operation.definition.raw.get("operationId")
    codes = INHERENT_REFUSALS.get(operation_id, {}).get(response.status_code)
    if codes is None:
        return None
    code = response.json().get("code")
    if code not in codes:
        raise AssertionError(
            f"{operation_id} refused schema-valid data with {response.status_code} {code!r}; "
            f"only {sorted(codes)} are inherent to it"
        )
    return None
