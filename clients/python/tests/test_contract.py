"""The client cannot drift from the server: its models and routes against the checked-in
services/upload-api/openapi.json (itself tested against the running API)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Union
from uuid import UUID

import pytest

from imgflow_client import models, routes

SPEC = json.loads(
    (Path(__file__).resolve().parents[3] / "services/upload-api/openapi.json").read_text()
)
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
MODELS = [
    m
    for m in vars(models).values()
    if isinstance(m, type) and dataclasses.is_dataclass(m) and hasattr(m, "SCHEMA")
]
# Operations the client leaves out on purpose: the operators' admin API (its own token).
NOT_CLIENT_ROUTES = {
    ("GET", "/v1/admin/dead-letters"),
    ("POST", "/v1/admin/dead-letters/{dead_letter_id}/replay"),
    ("POST", "/v1/admin/reprocess"),
    ("GET", "/v1/admin/reprocess/{run_id}"),
    ("GET", "/v1/admin/tenants/{tenant}/limits"),
    ("PATCH", "/v1/admin/tenants/{tenant}/limits"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _accepts(schema: dict[str, Any], tp: Any) -> bool:
    """Would every value the schema allows decode into ``tp``?"""
    schema = _resolve(schema)
    origin = typing.get_origin(tp)
    if "anyOf" in schema:
        return all(_accepts(option, tp) for option in schema["anyOf"])
    kind = schema.get("type")
    if origin in (Union, types.UnionType):
        return any(_accepts(schema, option) for option in typing.get_args(tp))
    if kind == "null":
        return tp is type(None)
    if not schema or tp is Any:  # an unconstrained member
        return tp is Any or (kind is None and tp is Any)
    if origin is typing.Literal:
        return kind == "string" and set(schema.get("enum", [schema.get("const")])) <= set(
            typing.get_args(tp)
        )
    if origin is list:
        return kind == "array" and _accepts(schema["items"], typing.get_args(tp)[0])
    if origin is dict:
        values = schema.get("additionalProperties", True)
        return kind == "object" and (values is True or _accepts(values, typing.get_args(tp)[1]))
    if dataclasses.is_dataclass(tp):
        return schema.get("title") == tp.SCHEMA or schema is SCHEMAS.get(tp.SCHEMA)
    simple = {
        str: ("string", None),
        int: ("integer", None),
        float: ("number", None),
        bool: ("boolean", None),
        datetime: ("string", "date-time"),
        UUID: ("string", "uuid"),
    }
    if tp in simple:
        want_type, want_format = simple[tp]
        if tp is float and kind == "integer":
            return True
        return kind == want_type and (want_format is None or schema.get("format") == want_format)
    return False


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_model_field_is_in_its_schema_with_a_compatible_type(model: type) -> None:
    schema = SCHEMAS[model.SCHEMA]
    hints = typing.get_type_hints(model)
    for field in dataclasses.fields(model):
        if field.metadata.get("answer") == "status":
            continue  # from the HTTP status, not the body
        assert field.name in schema["properties"], (
            f"{model.__name__}.{field.name} not in {model.SCHEMA}"
        )
        member = schema["properties"][field.name]
        assert _accepts(member, hints[field.name]), (
            f"{model.__name__}.{field.name}: {hints[field.name]} cannot hold {member}"
        )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_required_member_is_a_field_and_optional_ones_have_defaults(model: type) -> None:
    schema = SCHEMAS[model.SCHEMA]
    fields = {f.name: f for f in dataclasses.fields(model)}
    for name in schema.get("required", []):
        assert name in fields, f"{model.SCHEMA}.{name} is required but {model.__name__} lacks it"
    for name in set(schema["properties"]) - set(schema.get("required", [])):
        if name in fields:
            f = fields[name]
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            assert has_default, (
                f"{model.__name__}.{name} is optional in {model.SCHEMA}: it needs a default"
            )


def test_every_schema_the_client_reads_has_a_model() -> None:
    mirrored = {m.SCHEMA for m in MODELS}
    # Request bodies the client writes as plain dicts, the admin API's, and the list
    # wrappers (read through their item models), are not answers the client decodes.
    not_decoded = {
        "Stage",
        "Problem",
        "UploadRequest",
        "WebhookRequest",
        "WebhookEnableRequest",
        "ReprocessRequest",
        "DeadLetter",
        "ReplayAccepted",
        "ReprocessAllTenants",
        "ReprocessTenant",
        "ReprocessRun",
        "TenantLimits",
        "LimitsUpdate",
        "WebhookList",
        "DeliveryList",
    }
    assert set(SCHEMAS) - not_decoded <= mirrored
    assert not_decoded <= set(SCHEMAS)  # no stale names


@pytest.mark.parametrize("route", routes.ALL, ids=lambda r: f"{r.method} {r.template}")
def test_every_route_exists_with_its_verb_and_answer(route: routes.Route) -> None:
    operations = SPEC["paths"].get(route.template)
    assert operations is not None, f"{route.template} is not in openapi.json"
    operation = operations.get(route.method.lower())
    assert operation is not None, f"{route.method} {route.template} is not in openapi.json"
    assert str(route.status) in operation["responses"], f"{route.status} not documented"
    if route.model is not None:
        content = operation["responses"][str(route.status)]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{route.model.SCHEMA}"}
    if route in routes.ITEMS:
        content = operation["responses"][str(route.status)]["content"]["application/json"]
        wrapper = _resolve(content["schema"])
        assert wrapper["properties"]["items"]["items"] == {
            "$ref": f"#/components/schemas/{routes.ITEMS[route].SCHEMA}"
        }


def test_the_client_covers_every_public_operation() -> None:
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops}
    covered = {(r.method, r.template) for r in routes.ALL}
    assert documented - NOT_CLIENT_ROUTES == covered


def test_the_stage_names_are_the_schemas() -> None:
    assert set(models.STAGES) == set(SCHEMAS["Stage"]["enum"])


def test_the_type_check_refuses_what_would_not_decode() -> None:
    nullable_int = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert _accepts(nullable_int, int | None)
    assert not _accepts(nullable_int, int)  # null would not fit
    assert not _accepts({"type": "string"}, int)
    assert not _accepts({"type": "string", "format": "date-time"}, UUID)
    assert not _accepts({"type": "string", "enum": ["a", "b"]}, typing.Literal["a"])
    assert not _accepts({"type": "array", "items": {"type": "string"}}, list[int])
