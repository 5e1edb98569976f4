"""What every `imgflow` command shares: the settings and client, the exit statuses, and
errors turned into one clear line.

Exit status: 0 all went well; 1 something failed (a file, an image's processing, a
request); 2 a usage error (a path that does not exist, no API key); 3 the server could not
be used (unreachable, the key refused, over capacity after retries); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from uuid import UUID

from rich.console import Console

from imgflow_client.cli import config
from imgflow_client.errors import (
    ApiError,
    ConnectionFailed,
    RateLimited,
    Unauthorized,
    Unavailable,
)

if TYPE_CHECKING:
    from rich.table import Table

    from imgflow_client.async_client import AsyncClient
    from imgflow_client.retry import RetryNotice, RetryPolicy

EXIT_FAILED, EXIT_USAGE, EXIT_SERVER, EXIT_INTERRUPTED = 1, 2, 3, 130
T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


class Context:
    def __init__(self, url: str | None, retries: int, max_wait_s: float) -> None:
        self.settings = config.load(url)
        self._retries, self._max_wait_s = retries, max_wait_s

    @functools.cached_property
    def retry(self) -> RetryPolicy:
        from imgflow_client.retry import RetryPolicy  # imports httpx: not for --help

        return RetryPolicy(attempts=self._retries, max_retry_after_s=self._max_wait_s)

    def client(
        self, on_retry: Callable[[RetryNotice], None] | None = None, **options: Any
    ) -> AsyncClient:
        # Imported here, like asyncio in run_async: `imgflow --help` and `--version` need
        # neither httpx nor asyncio (~80 ms of start-up CPU).
        from imgflow_client.async_client import AsyncClient

        return AsyncClient(
            self.settings.url,
            self.settings.require_key(),
            retry=self.retry,
            on_retry=on_retry or _print_retry,
            **options,
        )


# The API's largest page (MAX_LIMIT in the server's paging.py).
MAX_PAGE = 200


def page_size(limit: int | None) -> int:
    """Pages as large as the server allows, but no larger than a ``limit`` asks for, so
    a short listing is one small request."""
    return min(MAX_PAGE, limit or MAX_PAGE)


def new_table(*headers: str) -> Table:
    """A rich table, imported when one is drawn: most runs of `upload --json` never do,
    and rich.table is a good part of the start-up."""
    from rich.table import Table

    return Table(*headers)


def _print_retry(notice: RetryNotice) -> None:
    what = f"{notice.status} {notice.code}" if notice.status else notice.error
    err.print(f"[yellow]server answered {what}; retrying in {notice.delay_s:.1f} s[/]")


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/] {message}", highlight=False)
    sys.exit(code)


def handled(func: Callable[..., T]) -> Callable[..., T]:
    """Errors become one clear line and the exit status of the module docstring."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except config.ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
        except ConnectionFailed as exc:
            fail(
                f"{exc}. Is the server running? The URL comes from --url, "
                f"{config.URL_VARIABLE} or {config.config_path()}",
                EXIT_SERVER,
            )
        except Unauthorized as exc:
            fail(
                f"the server refused the API key ({exc.status} {exc.code}: {exc.detail}); set "
                f"{config.KEY_VARIABLE} or run `imgflow login`",
                EXIT_SERVER,
            )
        except (Unavailable, RateLimited) as exc:
            after = (
                f", asking to retry after {exc.retry_after_s:.0f} s" if exc.retry_after_s else ""
            )
            fail(
                f"the server is over capacity or unavailable ({exc.status} {exc.code}: "
                f"{exc.detail}){after}; gave up after retrying. Try again later",
                EXIT_SERVER,
            )
        except ApiError as exc:
            extra = ""
            if sizes := exc.problem.get("available_sizes"):
                extra = f" (available sizes: {', '.join(map(str, sizes))})"
            if images := exc.problem.get("images"):
                extra = f" (images: {', '.join(map(str, images))})"
            fail(f"{exc.status} {exc.code}: {exc.detail or exc.title}{extra}", EXIT_FAILED)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        raise AssertionError("unreachable")

    return wrapper


def run_async(work: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(work)


def jsonable(obj: Any) -> Any:
    """A model (dataclass) as the JSON the API sent."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, UUID):
        return str(obj)
    return obj
