"""What the client raises: the server's RFC 9457 problem documents, and not reaching it."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the command's --help need not load httpx
    import httpx

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ImgflowError(Exception):
    """Anything this client raises on purpose."""


class ConnectionFailed(ImgflowError):
    """The server could not be reached (refused, timed out, DNS), even after retries."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"cannot reach {url}: {describe(cause)}")


class ApiError(ImgflowError):
    """An error answer. ``code`` is the problem's stable code (branch on it, never on the
    text); ``problem`` holds every member, including extra ones such as ``available_sizes``."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        problem: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.problem = problem or {}
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}: {title}")

    @classmethod
    def from_response(
        cls, response: httpx.Response, retry_after_s: float | None = None
    ) -> ApiError:
        problem = _problem_of(response)
        status = response.status_code
        code = str(problem.get("code") or _code_for_status(status))
        title = str(problem.get("title") or response.reason_phrase or "")
        detail = str(problem.get("detail") or "") if problem else _plain_detail(response)
        return _SUBCLASSES.get(status, cls)(status, code, title, detail, problem, retry_after_s)


class Unauthorized(ApiError):
    """401: the API key is missing, unknown or revoked."""


class NotFound(ApiError):
    """404: no such image (or upload, webhook) for this key's tenant."""


class Conflict(ApiError):
    """409: e.g. ``stage-running`` (reprocess), ``upload-incomplete``, ``group-changed``
    (a resolve naming a version the group no longer has; ``problem["current_version"]``)."""


class Unavailable(ApiError):
    """503 (after retries): ``overloaded``, ``storage-unavailable``, ``database-unavailable``."""


class RateLimited(ApiError):
    """429 (after retries)."""


_SUBCLASSES: dict[int, type[ApiError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
    503: Unavailable,
}


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document, or {} when the body is not one (a proxy's HTML page, say)."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _plain_detail(response: httpx.Response, limit: int = 300) -> str:
    """For an answer with no problem document (a proxy, or the storage a presigned URL
    names): who answered and the start of what it said, so the error can be traced to
    its server. Only the host: a presigned URL's query is its signature."""
    said = " ".join(response.content[:4096].decode("utf-8", errors="replace").split())
    said = said[:limit] + ("..." if len(said) > limit else "")
    try:
        url = response.request.url
    except RuntimeError:  # a response built without its request
        where = "the server"
    else:
        where = f"{url.host}:{url.port}" if url.port else url.host
    return f"{where} answered {response.status_code}" + (f": {said}" if said else "")


def _code_for_status(status: int) -> str:
    """A code for answers without a problem document (proxies, load balancers)."""
    return {502: "bad-gateway", 503: "unavailable", 504: "gateway-timeout"}.get(
        status, f"http-{status}"
    )


# httpx's transport errors by class name (no import: --help need not load httpx), in words.
_TRANSPORT_WORDS = {
    "ConnectError": "the connection was refused or the host is unreachable",
    "ConnectTimeout": "timed out connecting",
    "ReadTimeout": "timed out waiting for the answer",
    "WriteTimeout": "timed out sending the request",
    "PoolTimeout": "timed out waiting for a free connection",
    "ReadError": "the connection was dropped while reading the answer",
    "WriteError": "the connection was dropped while sending",
    "RemoteProtocolError": "the server closed the connection without a complete answer",
    "ProxyError": "the proxy refused the request",
}
_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def describe(exc: BaseException) -> str:
    """A short reason for a transport error, in words: httpx's messages are often empty,
    and some hold Python reprs."""
    text = _REPR.sub("", str(exc)).strip(" :")
    words = next(
        (_TRANSPORT_WORDS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _TRANSPORT_WORDS),
        None,
    )
    if words is None:
        return text or type(exc).__name__
    return f"{words} ({text})" if text else words
