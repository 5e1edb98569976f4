"""Where a webhook may send: a host that resolves, and (unless the deployment allows it)
only to public addresses. Checked by the API at registration and by the webhook sender
before every attempt, as DNS may change in between (a check-then-connect gap remains: an
egress proxy that enforces this is the stronger guard)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

UNRESOLVABLE = "webhook-host-unresolvable"
NOT_ALLOWED = "webhook-host-not-allowed"


class InvalidWebhook(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_destination(url: str, *, allow_private: bool, resolve: bool = False) -> None:
    """Refuse a host that does not resolve, or that resolves to a loopback, private or
    link-local address (SSRF) unless ``allow_private``. With ``allow_private`` the name is
    only resolved when ``resolve`` is set (the sender, which must tell an unresolvable
    host from a refused connection)."""
    if allow_private and not resolve:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidWebhook(UNRESOLVABLE, f"cannot resolve {host!r}") from exc
    if allow_private:
        return
    if not infos or not all(_is_public(str(info[4][0])) for info in infos):
        raise InvalidWebhook(
            NOT_ALLOWED, f"{host!r} resolves to a private, loopback or link-local address"
        )
