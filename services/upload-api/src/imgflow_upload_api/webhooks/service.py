"""What a webhook may be: known event patterns, an http(s) URL, a destination that is not
private (unless the deployment allows it), and its signing secret."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from imgflow_runtime.webhook_destinations import InvalidWebhook

STAGE_STATUSES = ("pending", "running", "done", "failed")
EVENT_TYPES = frozenset(
    {"image.created", "image.ready", "image.failed", "image.deleted"}
    | {f"stage.{status}" for status in STAGE_STATUSES}
    | {"duplicate_group.updated", "duplicate_group.deleted"}
    | {"similar_stack.updated", "similar_stack.resolved", "similar_stack.deleted"}
)
DEFAULT_EVENTS = ("image.ready", "image.failed")
MAX_WEBHOOKS_PER_TENANT = 25
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
_PATTERN = re.compile(r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z]+)$")
# What `events` may name, as the contract lists it: every type, and the patterns that
# match some (image.*, stage.*, *).
EVENT_CHOICES = (
    *sorted(EVENT_TYPES),
    "image.*",
    "stage.*",
    "duplicate_group.*",
    "similar_stack.*",
    "*",
)
# The URLs a webhook may have, said once for the check below and for the contract
# (webhooks/schemas.py), so a client generated from openapi.json is refused nothing its
# schema allows: http(s), a DNS name or dotted IPv4 host, a port 1-65535, visible ASCII.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}"
URL_PATTERN = rf"^https?://{_LABEL}(?:\.{_LABEL})*(?::(?:{_PORT}))?(?:[/?#][!-~]*)?$"


def check_events(events: Iterable[str] | None) -> list[str]:
    """The event patterns to subscribe to: known types, ``image.*``/``stage.*`` or ``*``."""
    chosen = list(dict.fromkeys(events)) if events is not None else list(DEFAULT_EVENTS)
    if not chosen:
        raise InvalidWebhook("unknown-webhook-event", "subscribe to at least one event")
    for pattern in chosen:
        known = pattern in EVENT_TYPES or (
            _PATTERN.match(pattern) is not None
            and pattern.endswith("*")
            and any(t.startswith(pattern[:-1]) for t in EVENT_TYPES)
        )
        if not known:
            raise InvalidWebhook(
                "unknown-webhook-event",
                f"unknown event {pattern!r}; known: {', '.join(sorted(EVENT_TYPES))}, "
                "image.*, stage.*, duplicate_group.*, similar_stack.* and *",
            )
    return chosen


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook("bad-webhook-url", f"the URL is longer than {MAX_URL_LENGTH}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidWebhook("bad-webhook-url", f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("bad-webhook-url", "the URL must be absolute http:// or https://")
    if parts.username or parts.password:
        raise InvalidWebhook("bad-webhook-url", "the URL must not carry credentials")
    if port == 0:
        raise InvalidWebhook("bad-webhook-url", "the URL's port must not be 0")
    if re.fullmatch(URL_PATTERN, url) is None:
        raise InvalidWebhook(
            "bad-webhook-url",
            "the URL must be http:// or https://, a host name or IPv4 address, an optional "
            "port, then visible ASCII only",
        )
    return url


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)
