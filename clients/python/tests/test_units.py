"""Pure logic: the retry policy, Retry-After, the Idempotency-Key, the state file, the SSE
parser, format sniffing, the command's file scan, the JSON decoding of answers, and what
resolving a duplicate group asks."""

from __future__ import annotations

import email.utils
import ssl
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from imgflow_client._convert import DecodeError, decode
from imgflow_client.async_client import _tls_for
from imgflow_client.cli.groups import Plan, PlanError, plan_resolution
from imgflow_client.cli.scan import MissingPath, collect
from imgflow_client.cli.state import State
from imgflow_client.errors import ApiError
from imgflow_client.files import derive_idempotency_key, sha256_bytes, sniff_format
from imgflow_client.models import DuplicateGroupView, Image, ResolveRequest, UploadAccepted
from imgflow_client.resume import PendingUpload
from imgflow_client.retry import RetryPolicy, parse_retry_after
from imgflow_client.sse import SseParser

# -- retry policy --------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=10, base_s=0.5, cap_s=4.0)

    highest = [policy.delay_s(n, rand=lambda: 1.0) for n in range(1, 7)]
    lowest = [policy.delay_s(n, rand=lambda: 0.0) for n in range(1, 7)]

    assert highest == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert lowest == [0.0] * 6  # full jitter: anywhere from nothing to the ceiling


def test_retry_after_is_a_floor_and_too_long_a_wait_gives_up() -> None:
    policy = RetryPolicy(attempts=5, base_s=0.5, max_retry_after_s=60)

    assert policy.delay_s(1, retry_after_s=30, rand=lambda: 0.0) == 30
    assert 30 <= policy.delay_s(3, retry_after_s=30, rand=lambda: 1.0) <= 31  # type: ignore[operator]
    assert policy.delay_s(1, retry_after_s=61) is None


def test_attempts_count_the_first_try() -> None:
    policy = RetryPolicy(attempts=3)

    assert policy.delay_s(2) is not None
    assert policy.delay_s(3) is None
    assert RetryPolicy(attempts=1).delay_s(1) is None


@pytest.mark.parametrize(
    ("status", "idempotent", "retried"),
    [
        (503, False, True),  # the server refused: it did nothing
        (429, False, True),
        (502, True, True),
        (504, True, True),
        (502, False, False),  # a gateway lost the answer: the request may have run
        (500, True, False),
        (404, True, False),
    ],
)
def test_which_answers_are_retried(status: int, idempotent: bool, retried: bool) -> None:
    assert RetryPolicy().should_retry_status(status, idempotent) is retried


def test_which_transport_errors_are_retried() -> None:
    policy = RetryPolicy()
    never_sent = httpx.ConnectError("refused")
    answer_lost = httpx.ReadTimeout("slow")

    assert policy.should_retry_error(never_sent, idempotent=False)
    assert policy.should_retry_error(answer_lost, idempotent=True)
    assert not policy.should_retry_error(answer_lost, idempotent=False)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)

    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(date, now=now) == pytest.approx(42, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- the Idempotency-Key --------------------------------------------------------------------


def test_the_idempotency_key_is_the_bytes_digest_in_visible_ascii() -> None:
    digest = sha256_bytes(b"a photo")

    key = derive_idempotency_key(digest.upper())

    assert key == "sha256-" + digest
    assert key == derive_idempotency_key(sha256_bytes(b"a photo"))  # the same bytes, any time
    assert key != derive_idempotency_key(sha256_bytes(b"another photo"))
    assert 1 <= len(key) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key)
    with pytest.raises(ValueError):
        derive_idempotency_key("not-a-digest")


# -- the state file ------------------------------------------------------------------------


def test_the_hash_cache_is_keyed_by_path_size_and_mtime(tmp_path: Path) -> None:
    file = tmp_path / "a.jpg"
    with State(tmp_path / "state.sqlite3", "account-1") as state:
        state.remember_sha256(file, 100, 5, "ab" * 32)

        assert state.cached_sha256(file, 100, 5) == "ab" * 32
        assert state.cached_sha256(file, 101, 5) is None  # grew
        assert state.cached_sha256(file, 100, 6) is None  # touched
        assert state.cached_sha256(tmp_path / "b.jpg", 100, 5) is None


def test_uploads_are_remembered_per_account_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    sha = "cd" * 32
    with State(path, "server-a") as state:
        state.mark_inflight(sha)
        assert set(state.inflight()) == {sha}
        state.record_uploaded(sha, "image-1")

    with State(path, "server-a") as again, State(path, "server-b") as other:
        assert again.uploaded_image(sha) == "image-1"
        assert again.inflight() == {}  # recorded: no longer in flight
        assert other.uploaded_image(sha) is None  # another server or key knows nothing


def test_an_upload_left_in_flight_is_there_for_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with State(path, "a") as state:
        state.mark_inflight("ef" * 32)  # then the process is killed

    with State(path, "a") as next_run:
        assert list(next_run.inflight()) == ["ef" * 32]


def test_an_answer_is_committed_with_the_next_upload_and_until_then_stays_in_flight(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    first, second = "ab" * 32, "cd" * 32
    state = State(path, "a")
    state.mark_inflight(first)
    state.record_uploaded(first, "image-1")

    assert state.uploaded_image(first) == "image-1"
    with State(path, "a") as killed_now:  # what a run killed at this moment leaves
        assert list(killed_now.inflight()) == [first]  # looked up on the server next run
        assert killed_now.uploaded_image(first) is None
    state.mark_inflight(second)
    with State(path, "a") as later:
        assert list(later.inflight()) == [second]
        assert later.uploaded_image(first) == "image-1"
    state.close()


def test_presigned_uploads_in_progress_round_trip(tmp_path: Path) -> None:
    ticket = {"id": "u1", "parts": [{"part_number": 1}, {"part_number": 2}]}
    with State(tmp_path / "s.sqlite3", "a") as state:
        state.save("01" * 32, PendingUpload(ticket, {2}))

        loaded = state.load("01" * 32)
        assert loaded is not None and loaded.ticket == ticket and loaded.parts_done == {2}
        state.forget("01" * 32)
        assert state.load("01" * 32) is None


# -- server-sent events ------------------------------------------------------------------


def test_sse_messages_comments_multiline_data_and_ids() -> None:
    parser = SseParser()
    lines = [
        ": ping - 2026-01-01",
        "id: 41",
        "event: state",
        'data: {"image_id": "x",',
        'data: "status": "processing"}',
        "retry: 2000",
        "",
        "event: stage",
        'data: {"type": "stage.done"}',
        "",
    ]

    events = [e for line in lines if (e := parser.feed(line)) is not None]

    assert [(e.id, e.event) for e in events] == [("41", "state"), ("41", "stage")]
    assert events[0].data == {"image_id": "x", "status": "processing"}
    assert events[1].type == "stage.done"
    assert parser.last_id == "41" and parser.retry_ms == 2000


# -- formats and the file scan -------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"GIF89a", "gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"II*\x00", "tiff"),
        (b"\x00\x00\x00\x1cftypheic", "heif"),
        (b"\x00\x00\x00\x1cftypavif", "avif"),
        (b"hello, world", None),
        (b"%PDF-1.7", None),
    ],
)
def test_formats_are_sniffed_from_magic_bytes(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt


def test_the_scan_names_missing_paths_before_doing_anything(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")

    with pytest.raises(MissingPath, match="nope"):
        collect([tmp_path / "a.jpg", tmp_path / "nope"], recursive=False)


def test_folders_are_read_one_level_unless_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.jpg", "sub/c.jpg"):
        (tmp_path / name).write_bytes(b"x")

    shallow = collect([tmp_path], recursive=False)
    deep = collect([tmp_path, tmp_path / "a.jpg"], recursive=True)

    assert [p.name for p in shallow] == ["a.jpg", "b.jpg"]
    assert [p.name for p in deep] == ["a.jpg", "b.jpg", "c.jpg"]  # each file once


# -- decoding answers ------------------------------------------------------------------------


def test_unknown_members_are_ignored_and_missing_ones_refused() -> None:
    body = {
        "id": "6f1c1a52-52a4-4a8e-9a53-cf1cc0a6e2f0",
        "status": "processing",
        "sha256": "00" * 32,
        "byte_size": 10,
        "content_type": "image/jpeg",
        "stages": {"thumbnails": "pending"},
        "added_later": True,
    }

    accepted = decode(UploadAccepted, body)

    assert accepted.byte_size == 10 and accepted.duplicate_of is None
    with pytest.raises(DecodeError, match="sha256"):
        decode(UploadAccepted, {k: v for k, v in body.items() if k != "sha256"})
    with pytest.raises(DecodeError, match="byte_size"):
        decode(UploadAccepted, {**body, "byte_size": "ten"})


def test_an_image_needs_its_required_members() -> None:
    with pytest.raises(DecodeError, match="missing 'id'"):
        decode(Image, {})


# -- resolving a duplicate group -----------------------------------------------------------

_MEMBERS = [UUID(int=n) for n in (1, 2, 3)]


def _group_view(keeper: UUID = _MEMBERS[0]) -> DuplicateGroupView:
    member = {
        "url": "/v1/images/x",
        "original_url": "/v1/images/x/original",
        "thumbnails": [],
        "content_type": "image/jpeg",
        "byte_size": 1,
        "format": "jpeg",
        "width": 1,
        "height": 1,
        "captured_at": None,
        "has_exif": False,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    return decode(
        DuplicateGroupView,
        {
            "id": str(UUID(int=99)),
            "version": 4,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
            "members": [{**member, "id": str(m)} for m in _MEMBERS],
            "evidence": [],
            "suggested_keeper": {"id": str(keeper), "reasons": ["most-pixels"]},
        },
    )


def test_a_resolution_trashes_every_member_not_kept_unless_told_what_to_trash() -> None:
    one, two, three = _MEMBERS
    view = _group_view(keeper=two)

    assert plan_resolution(view, [one], [], False) == Plan([one], [two, three])
    assert plan_resolution(view, [], [], True) == Plan([two], [one, three])
    assert plan_resolution(view, [one], [three], False) == Plan([one], [three])
    assert plan_resolution(None, [], [three], False) == Plan([], [three])


@pytest.mark.parametrize(
    ("keep", "trash", "why"),
    [
        (_MEMBERS, [], "every member would be kept"),
        ([], _MEMBERS, "trash every member"),
        ([_MEMBERS[0]], [_MEMBERS[0]], "both kept and trashed"),
        ([UUID(int=7)], [], f"not members of group {UUID(int=99)}: {UUID(int=7)}"),
    ],
)
def test_a_resolution_that_would_change_nothing_or_keep_nothing_is_refused(
    keep: list[UUID], trash: list[UUID], why: str
) -> None:
    with pytest.raises(PlanError, match=why):
        plan_resolution(_group_view(), keep, trash, False)


def test_a_resolve_request_is_the_same_whatever_order_or_spelling_names_the_images() -> None:
    one, two = _MEMBERS[:2]
    upper = ResolveRequest(version=3, trash=[str(two).upper(), one])  # type: ignore[list-item]

    assert upper.to_json() == ResolveRequest(version=3, trash=[one, two, one]).to_json()
    assert upper.to_json() == {
        "version": 3,
        "keep": [],
        "trash": [str(one), str(two)],
        "dismiss": False,
    }


def test_the_command_starts_without_what_only_the_blocking_client_needs() -> None:
    code = (
        "import sys, imgflow_client.cli.main, imgflow_client; "
        "print('anyio.from_thread' in sys.modules, imgflow_client.Client.__name__, "
        "'anyio.from_thread' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.split() == ["False", "Client", "True"]  # imported on first use


def test_a_plain_http_api_skips_loading_ca_certificates_but_never_skips_verification() -> None:
    plain = _tls_for("http://127.0.0.1:8000")

    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0  # trusts nothing: https would fail
    assert _tls_for("https://imgflow.example") is True  # the CA certificates, as usual


# -- start-up ------------------------------------------------------------------------------


def _imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (a None entry
    blocks an import: not loaded)."""
    listing = "print(' '.join(k for k, v in sys.modules.items() if v is not None))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\n{listing}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_the_command_loads_its_http_client_only_to_run_and_never_the_httpx_tool() -> None:
    defined = _imported_after("import imgflow_client.cli.main")  # what --help needs
    running = _imported_after("import imgflow_client.cli.main, imgflow_client.cli.upload_run")

    assert not defined & {"httpx", "asyncio", "sqlite3", "rich.table", "rich.progress"}
    assert {"httpx", "asyncio"} <= running
    assert not running & {"httpx._main", "pygments.lexers", "rich.syntax", "rich.progress"}


def test_the_package_imports_its_names_on_first_use() -> None:
    import imgflow_client

    loaded = _imported_after("import imgflow_client")

    assert "httpx" not in loaded and "imgflow_client.models" not in loaded
    assert sorted(imgflow_client.__all__) == sorted(set(imgflow_client.__all__))
    for name in imgflow_client.__all__:
        assert getattr(imgflow_client, name).__name__ == name
    with pytest.raises(AttributeError):
        imgflow_client.NoSuchName  # noqa: B018


def test_bars_only_on_a_terminal_and_one_note_per_kind_of_retry() -> None:
    import io

    from rich.console import Console

    from imgflow_client.cli.display import NotesDisplay, ProgressDisplay, open_display
    from imgflow_client.cli.outcomes import FileOutcome
    from imgflow_client.retry import RetryNotice

    piped = Console(file=io.StringIO())
    with open_display(piped, wait=False) as plain:
        assert type(plain) is NotesDisplay
        plain.start(1, 10)
        plain.file_done(FileOutcome(Path("a.txt"), "skipped", "not an image"))
        for _ in range(2):  # 16 workers hit the same 503: one line
            plain.retry(RetryNotice("POST", "/v1/images", 1, 0.5, status=503, code="overloaded"))
    assert piped.file.getvalue().count("503 overloaded") == 1  # type: ignore[attr-defined]

    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with open_display(terminal, wait=False) as bars:
        assert isinstance(bars, ProgressDisplay)
        bars.start(1, 10)
        bars.sent(10)
        bars.file_done(FileOutcome(Path("a.txt"), "skipped", "not an image"))
        assert [t.completed for t in bars.progress.tasks] == [10, 1]
    assert "a.txt: not an image" in terminal.file.getvalue()  # type: ignore[attr-defined]


def test_the_groups_listing_asks_no_group_whose_keeper_it_names() -> None:
    """`imgflow groups` takes each keeper from the listing; only a summary without one (a
    server older than that field) costs a request for the group's view."""
    import asyncio

    from imgflow_client.cli.groups import _keepers
    from imgflow_client.models import DuplicateGroupSummary, SuggestedKeeper

    named = SuggestedKeeper(id=UUID(int=1), reasons=["most-pixels"])
    viewed = SuggestedKeeper(id=UUID(int=2), reasons=["largest-file"])

    def summary(n: int, keeper: SuggestedKeeper | None) -> DuplicateGroupSummary:
        return decode(
            DuplicateGroupSummary,
            {
                "id": str(UUID(int=100 + n)),
                "url": f"/v1/duplicate-groups/{UUID(int=100 + n)}",
                "version": 1,
                "size": 2,
                "created_at": "2026-12-02T16:00:00Z",
                "updated_at": "2026-12-02T16:00:00Z",
                **(
                    {"suggested_keeper": {"id": str(keeper.id), "reasons": keeper.reasons}}
                    if keeper
                    else {}
                ),
            },
        )

    asked: list[UUID] = []

    class Views:
        async def get_duplicate_group(self, group_id: UUID) -> DuplicateGroupView:
            asked.append(group_id)
            return type("View", (), {"suggested_keeper": viewed})()  # type: ignore[return-value]

    keepers = asyncio.run(_keepers(Views(), [summary(1, named), summary(2, None)]))  # type: ignore[arg-type]
    assert keepers == [named, viewed]
    assert asked == [UUID(int=102)]


def test_pages_are_followed_to_the_last_and_fetched_only_as_read() -> None:
    """The listings' iterators (images, groups, stacks) share cursor_pages.follow, and the
    command's --limit (review.first) stops reading there: no page beyond it is asked."""
    import asyncio

    from imgflow_client.cli.review import first
    from imgflow_client.cursor_pages import follow
    from imgflow_client.models import ImagePage

    pages = {None: (["a", "b"], "p2"), "p2": (["c"], "p3"), "p3": ([], None)}
    asked: list[str | None] = []

    async def fetch(cursor: str | None) -> ImagePage:
        asked.append(cursor)
        items, after = pages[cursor]
        return ImagePage(items=items, next_cursor=after)  # type: ignore[arg-type]

    async def read(limit: int | None) -> list[str]:
        return await first(follow(fetch), limit)

    assert asyncio.run(read(None)) == ["a", "b", "c"]
    assert asked == [None, "p2", "p3"]
    asked.clear()
    assert asyncio.run(read(2)) == ["a", "b"]
    assert asked == [None]


def test_an_answer_without_a_problem_document_names_its_server_not_its_signature() -> None:
    # e.g. the object store refusing a presigned part: XML, not RFC 9457
    request = httpx.Request(
        "PUT", "http://storage.example:8333/imgflow/up/1?partNumber=1&X-Amz-Signature=secret"
    )
    xml = "<?xml version='1.0'?>\n<Error>\n  <Code>InvalidArgument</Code>\n</Error>"
    error = ApiError.from_response(httpx.Response(400, text=xml, request=request))
    assert (error.status, error.code, error.title) == (400, "http-400", "Bad Request")
    assert error.detail == (
        "storage.example:8333 answered 400: "
        "<?xml version='1.0'?> <Error> <Code>InvalidArgument</Code> </Error>"
    )
    assert "secret" not in str(error)
    # A long page is cut; a problem document is taken as it is.
    page = ApiError.from_response(httpx.Response(502, text="x" * 5000, request=request))
    assert page.code == "bad-gateway" and page.detail.endswith("x...") and len(page.detail) < 400
    problem = {"type": "about:blank", "title": "Nope", "status": 409, "code": "c", "detail": "d"}
    assert ApiError.from_response(httpx.Response(409, json=problem, request=request)).detail == "d"
