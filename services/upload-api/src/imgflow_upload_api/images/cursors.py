"""The listing's cursor: an opaque position in the keyset order (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from uuid import UUID

from imgflow_upload_api.problems import Problem


class Cursor:
    """The position after the last row of a page, bound to the tenant it was made for.

    Opaque to clients: base64url of JSON with a check digest, so a garbled, truncated or
    edited cursor, or one of another tenant, is refused rather than read as a position.
    """

    def __init__(self, created_at: datetime, image_id: UUID) -> None:
        self.created_at = created_at
        self.image_id = image_id

    @staticmethod
    def _check(tenant_id: UUID, position: list[str]) -> str:
        digest = hashlib.sha256(f"{tenant_id}|{position[0]}|{position[1]}".encode())
        return digest.hexdigest()[:16]

    def encode(self, tenant_id: UUID) -> str:
        position = [self.created_at.isoformat(), str(self.image_id)]
        raw = json.dumps({"p": position, "c": self._check(tenant_id, position)}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, tenant_id: UUID) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            position = data["p"]
            if data["c"] != cls._check(tenant_id, position):
                raise ValueError("check digest mismatch")
            created_at = datetime.fromisoformat(position[0])
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at, UUID(position[1]))
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError):
            raise Problem(
                400,
                "bad-cursor",
                "Bad cursor",
                "the cursor is not one this API issued; start again without it",
            ) from None
