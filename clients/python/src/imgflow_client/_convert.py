"""JSON to the typed models (dataclasses), led by their type hints.

Members the server adds later are ignored, so an older client keeps working; a member a
model requires and the answer lacks is an error (tests/test_contract.py keeps the models
and openapi.json in step).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from typing import Any, TypeVar, Union
from uuid import UUID

T = TypeVar("T")


class DecodeError(ValueError):
    """An answer that does not have the shape the model expects."""


def decode(cls: type[T], value: Any) -> T:
    return typing.cast(T, _decode(cls, value, cls.__name__))


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """A dataclass's (name, type hint, required) for each field, worked out once: the
    type hints and fields of a model do not change, and each upload decodes one."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value, where)
            except DecodeError:
                continue
        raise DecodeError(f"{where}: {value!r} is none of {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            # A new value the server added (a status, a method): keep it, do not fail.
            return value
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        _expect(value, list, where)
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        _expect(value, dict, where)
        return {k: _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        _expect(value, dict, where)
        kwargs = {}
        for name, hint, required in _fields(tp):
            if name in value:
                kwargs[name] = _decode(hint, value[name], f"{where}.{name}")
            elif required:
                raise DecodeError(f"{where}: missing {name!r}")
        return tp(**kwargs)
    if tp is datetime:
        _expect(value, str, where)
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise DecodeError(f"{where}: {value!r} is not a date-time") from exc
    if tp is UUID:
        _expect(value, str, where)
        try:
            return UUID(value)
        except ValueError as exc:
            raise DecodeError(f"{where}: {value!r} is not a UUID") from exc
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"{where}: {value!r} is not a number")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise DecodeError(f"{where}: {value!r} is not {tp.__name__}")
        return value
    raise TypeError(f"{where}: no decoder for {tp!r}")


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise DecodeError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
