"""The checked-in OpenAPI document is the one the running API serves, and holds the
properties a client relies on. (That every status the server answers is declared is
schemathesis's status_code_conformance check, in tests/contract.)"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from imgflow_localstack.system import LocalSystem
from tools.openapi import SPEC, openapi_document, openapi_json

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]


def test_the_checked_in_document_matches_the_app() -> None:
    assert SPEC.read_text() == openapi_json(), (
        "services/upload-api/openapi.json is stale: run .venv/bin/python tools/openapi.py --write"
    )


def test_the_running_api_serves_the_checked_in_document(system: LocalSystem) -> None:
    served = httpx.get(f"{system.api_url}/openapi.json", timeout=30)

    assert served.status_code == 200
    assert served.json() == json.loads(SPEC.read_text())


def test_every_v1_route_takes_a_bearer_key() -> None:
    spec = openapi_document()
    schemes = spec["components"]["securitySchemes"]

    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    for method, path, operation in _operations(spec):
        expected = [{"adminToken": []}] if path.startswith("/v1/admin/") else [{"apiKey": []}]
        if path.startswith("/v1/"):
            assert operation.get("security") == expected, f"{method} {path}"
            assert "401" in operation["responses"], f"{method} {path} documents no 401"
        else:
            assert "security" not in operation, f"{method} {path} is public"


def test_every_error_is_a_documented_problem() -> None:
    spec = openapi_document()
    problem = spec["components"]["schemas"]["Problem"]

    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance", "code"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM: {"schema": PROBLEM_REF}}, (
                    f"{method} {path} {status} is not a problem document"
                )
                assert response["description"].endswith("RFC 9457 problem details")
        if path.startswith("/v1/"):
            assert "Retry-After" in operation["responses"]["503"]["headers"]


def test_every_operation_has_an_id_that_reads_well_and_is_unique() -> None:
    operations = _operations(openapi_document())
    missing = [f"{method} {path}" for method, path, op in operations if "operationId" not in op]
    assert not missing, missing
    ids = [operation["operationId"] for _, _, operation in operations]

    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+([A-Z][a-z0-9]*)*", i) for i in ids), ids
    assert {"uploadImage", "getImage"} <= set(ids)


def test_the_upload_documents_its_body_idempotency_key_and_location() -> None:
    upload = openapi_document()["paths"]["/v1/images"]["post"]

    (key,) = [p for p in upload["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and not key["required"]
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    bodies = set(upload["requestBody"]["content"])
    assert bodies >= {"application/octet-stream", "multipart/form-data"}
    assert "Location" in upload["responses"]["201"]["headers"]
    assert {"200", "201", "400", "413", "415", "422"} <= set(upload["responses"])
