"""`make bench` keeps working: its end-to-end suite on 20 small images, and its parts.

Nothing here is timed pass/fail; the benchmark's figures are checked for shape and
sense (every image processed, every process measured), never for speed.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from bench import api as bench_api
from bench import dedupe, dedupe_probe
from bench import revocation as bench_revocation
from bench import stacks as bench_stacks
from bench.e2e import to_suite, write_chart_for, write_raw
from bench.e2e_driver import SERVERS, SERVICES, measure
from bench.images import FULL, SMALL, ensure_images, render
from bench.options import parse_concurrency
from bench.results import Measurement, Suite, write
from imgflow_deduper import overlap
from imgflow_deduper.probe import features_of
from imgflow_localstack.system import LocalSystem
from imgflow_upload_api.settings import ApiSettings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_e2e_suite_processes_every_image_and_writes_its_report(
    system: LocalSystem, tmp_path: Path
) -> None:
    every = ensure_images(21, SMALL, cache=tmp_path / "images")
    paths, probe = every[:20], every[20:]

    report = measure(system, paths, clients=4, probe_paths=probe, timeout_s=90)

    assert report.settled, "not every image had every stage settled in time"
    assert [u.status for u in report.probe_uploads] == [201]
    assert len(report.ready_s) == 1 and 0 < report.ready_s[0] < 90
    assert {r.stage for r in report.probe_stage_rows} == {"thumbnails", "hashing", "dedupe"}
    last = max(r.finished_s or 0 for r in report.probe_stage_rows)
    assert last == pytest.approx(report.ready_s[0])
    assert [u.status for u in report.uploads] == [201] * 20
    assert len(set(report.image_ids)) == 20
    assert len(report.stage_rows) == 60
    assert {(r.stage, r.status) for r in report.stage_rows} == {
        ("thumbnails", "done"),
        ("hashing", "done"),
        ("dedupe", "done"),
    }
    assert all(r.wait_s is not None and r.run_s is not None for r in report.stage_rows)
    assert report.clear_s > 0
    assert report.samples[-1].settled_images == 20
    assert set(report.usage) == {*SERVICES, *SERVERS}
    assert report.usage["thumbnailer"].cpu_s > 0
    assert report.usage["thumbnailer"].peak_child_rss > 0
    assert report.usage["api"].peak_main_rss > 0

    suite = to_suite(report, SMALL, paths)
    out = tmp_path / "out"
    suite.files += [write_raw(report, out), write_chart_for(report, SMALL, out)]
    folder = write([suite], tmp_path / "out")

    saved = json.loads((folder / "results.json").read_text())
    (e2e,) = saved["suites"]
    by_name = {m["name"]: m for m in e2e["measurements"]}
    for name in (
        "upload latency p50, one client, idle system",
        "upload latency p99, 4 clients at once",
        "every image with every stage done",
        "thumbnail jobs/min, 1 worker processes",
    ):
        assert by_name[name]["value"] > 0, name
        assert e2e["ratios"][name] > 0, f"{name} has no ratio to ADR-0012's figure"
    assert [t["columns"][0] for t in e2e["tables"]] == ["stage", "process", "", "stage"]
    stage_rows = {row[0]: row for row in e2e["tables"][0]["rows"]}
    assert set(stage_rows) == {"thumbnails", "hashing", "dedupe"}
    assert all(row[2] == 20 for row in stage_rows.values()), "done count per stage"
    assert saved["machine"]["cores"] >= 1
    markdown = (folder / "results.md").read_text()
    assert "| every image with every stage done |" in markdown
    assert "![e2e-queues.png](e2e-queues.png)" in markdown
    assert (folder / "e2e-queues.png").read_bytes().startswith(PNG_MAGIC)
    raw = json.loads((folder / "e2e-run.json").read_text())
    assert len(raw["stage_rows"]) == 60
    assert len(raw["samples"]) == len(report.samples)


def test_dedupe_suite_bills_each_pipeline_for_decode_and_inference() -> None:
    suite = dedupe.run(quick=True)

    assert not suite.failed
    by_name = {m.name: m for m in suite.measurements}
    assert by_name["upload, now (800x600 JPEG)"].baseline == "upload, before (800x600 JPEG)"
    cpu = [m for m in suite.measurements if m.unit == "CPU ms/image"]
    assert len(cpu) == 14
    for m in cpu:
        assert m.value > 0, m.name  # both parts of every pipeline cost something
        if m.baseline is not None:
            assert (suite.ratio(m) or 0) > 0, f"{m.name} has no ratio to {m.baseline}"
    parts = ("decode + 6 views", "inference (7 inputs)")
    for when in ("before", "now"):
        total = by_name[f"upload, {when} (800x600 JPEG)"].value
        assert total == pytest.approx(sum(by_name[f"{p}, {when}"].value for p in parts))
    # the search: the similar candidates add the scene's two other shots (CNN about 0.53,
    # so now and then one falls under 0.5) to the 20 copies
    assert by_name["geometric checks per upload, 20 nearest"].value == 20
    assert 20 < by_name["geometric checks per upload, + similar candidates"].value <= 22
    assert by_name["candidate search, 20 nearest (240 images)"].value > 0


def test_the_dedupe_suites_look_alike_is_one_whose_cells_motion_is_measured() -> None:
    """The check's cost with and without the motion compares something only where the
    worker measures it: a fit over most of both frames."""
    (path,) = ensure_images(1, SMALL)
    copy = dedupe.analysis_copy(path.read_bytes())
    mine = features_of(copy)
    found = overlap.overlap(mine, features_of(dedupe.burst_frame(path.read_bytes())))

    assert found.iou >= overlap.MOTION_MIN_IOU
    assert not math.isnan(found.motion)
    assert math.isnan(overlap.overlap(mine, mine, motion=False).motion)


def test_dedupe_probe_suite_reads_kept_features_where_the_old_way_makes_them() -> None:
    suite = dedupe_probe.run(quick=True)

    assert not suite.failed
    by_name = {m.name: m for m in suite.measurements}
    before, now = dedupe_probe.BEFORE, list(dedupe_probe.WAYS)[-1]
    for size in (30, 60):
        for way in dedupe_probe.WAYS:
            assert by_name[f"check, wall, {way} ({size} images)"].value > 0
            # alike, as in the soak: the geometric check runs
            assert by_name[f"pairs probed per upload, {way} ({size} images)"].value > 0
            assert by_name[f"check CPU at 60 images over at 30, {way}"].value > 0
        wall = by_name[f"check, wall, {now} ({size} images)"]
        assert wall.baseline == f"check, wall, {before} ({size} images)"
        read = {w: by_name[f"features read where kept per upload, {w} ({size} images)"].value
                for w in (before, now)}  # fmt: skip
        assert read[before] == 0 and read[now] > 0
    # kept, the upload's own features are made, and those of the uploads the old way
    # checked (it keeps none); the old way makes every candidate's not in its memory
    made = {w: by_name[f"features made per upload, {w} (60 images)"].value for w in (before, now)}
    assert made[now] < made[before]
    assert 1_000 < by_name["features kept: size of the object in S3"].value < 64_000


def test_images_are_cached_deterministic_and_distinct(tmp_path: Path) -> None:
    first = ensure_images(6, SMALL, cache=tmp_path)
    stamps = [p.stat().st_mtime_ns for p in first]

    again = ensure_images(6, SMALL, cache=tmp_path)

    assert again == first
    assert [p.stat().st_mtime_ns for p in again] == stamps, "a cached image was regenerated"
    assert first[3].read_bytes() == render(SMALL, 3)
    assert len({p.read_bytes() for p in first}) == 6


def test_a_full_size_image_is_a_12_megapixel_jpeg_of_3_to_5_mb() -> None:
    data = render(FULL, 0)

    assert 3_000_000 <= len(data) <= 5_000_000
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", (4000, 3000))
        # Photo-like, not flat colour: a wide spread of values in every channel.
        extrema = image.reduce(8).getextrema()
    assert all(high - low > 100 for low, high in extrema)


def test_concurrency_option_names_workers_and_counts() -> None:
    assert parse_concurrency("thumbnailer=4, hasher=2") == {
        "thumbnailer": 4,
        "hasher": 2,
        "deduper": 1,
    }
    assert parse_concurrency("thumbnailer-express=3")["thumbnailer-express"] == 3
    for bad in ("thumbnailer", "thumbnailer=0", "api=2", "hasher=two"):
        with pytest.raises(ValueError, match="bad concurrency"):
            parse_concurrency(bad)


def test_nothing_measured_is_written_as_null_not_nan(tmp_path: Path) -> None:
    suite = Suite("empty", [Measurement("nothing", math.nan, "ms")])

    folder = write([suite], tmp_path)

    saved = json.loads((folder / "results.json").read_text())
    assert saved["suites"][0]["measurements"][0]["value"] is None


def test_api_suite_measures_both_servers_and_the_event_loop(tmp_path: Path) -> None:
    suite = bench_api.run(quick=True)

    folder = write([suite], tmp_path)
    saved = json.loads((folder / "results.json").read_text())
    (api,) = saved["suites"]
    by_name = {m["name"]: m for m in api["measurements"]}
    for name in (
        "imgflow: p50 latency, 500 KB uploads, 4 clients",
        "imgflow vs naive handler: p99 latency, 500 KB uploads, 4 clients",
        "imgflow: 100 KB uploads per second, 4 clients",
        "imgflow: API CPU per 500 KB upload",
        "imgflow: event-loop lag p99 (histogram bucket), 500 KB uploads, 4 clients",
        "imgflow: p50 latency, 500 KB uploads, one client",  # beside a bare S3 PUT
    ):
        assert by_name[name]["value"] > 0, name
        assert api["ratios"][name] > 0, f"{name} has no ratio to its baseline"
    runs, pieces = api["tables"]
    assert [row[1] for row in runs["rows"]] == ["8 x 201", "8 x 201", "20 x 201", "20 x 201"]
    column = {name: i for i, name in enumerate(runs["columns"])}
    for row in runs["rows"]:
        assert row[column["max lag ms since start"]] > 0, "the server's loop-lag probe ran"
        assert row[column["idle process: lag p99 ms"]] > 0, "the idle reference probe ran"
    assert len(pieces["rows"]) == 7 and all(row[1] > 0 for row in pieces["rows"])


def test_client_suite_compares_the_command_with_a_bare_httpx_loop(tmp_path: Path) -> None:
    from bench import client as bench_client

    suite = bench_client.run(quick=True)

    folder = write([suite], tmp_path)
    (saved,) = json.loads((folder / "results.json").read_text())["suites"]
    by_name = {m["name"]: m for m in saved["measurements"]}
    for name, measurement in by_name.items():
        assert measurement["value"] > 0, name
    what = "40 uploads of ~100 KB, 4 at once"
    assert saved["ratios"][f"imgflow upload (whole process): {what}"] > 0
    script = f"imgflow upload vs the keyed script (both whole processes): {what}"
    assert saved["ratios"][script] > 0
    (phases,) = saved["tables"]
    assert [row[:2] for row in phases["rows"]] == [
        ["bare httpx", 40],
        ["bare httpx + key", 40],
        ["bare script + key", 40],  # bench/bare_client.py, in a process of its own
        ["imgflow upload", 40],
    ]


def test_revocation_suite_times_every_round_against_the_cache_bound(tmp_path: Path) -> None:
    suite = bench_revocation.run(quick=True)

    folder = write([suite], tmp_path)
    (saved,) = json.loads((folder / "results.json").read_text())["suites"]
    by_name = {m["name"]: m for m in saved["measurements"]}
    assert by_name[bench_revocation.CACHE_BOUND]["value"] == ApiSettings().api_key_cache_s
    for name in (
        "revoked key refused by every API process, p50",
        "revoked key refused by every API process, worst",
    ):
        assert by_name[name]["value"] > 0, name
        assert saved["ratios"][name] > 0, f"{name} has no ratio to the cache bound"
    (rounds,) = saved["tables"]
    assert [row[0] for row in rounds["rows"]] == [1, 2, 3]
    assert all(row[1] > 0 for row in rounds["rows"])


def test_stacks_suite_measures_upkeep_with_and_without_the_stacks_step() -> None:
    suite = bench_stacks.run(quick=True)
    assert not suite.failed
    names = [m.name for m in suite.measurements]
    assert len(names) == 2 * len(bench_stacks.QUICK_SIZES)
    for m in suite.measurements[1::2]:  # each "groups + stacks" against its "groups only"
        assert "groups + stacks" in m.name and m.baseline in names
        assert suite.ratio(m) is not None
    [table] = suite.tables
    assert [row[0] for row in table.rows] == list(bench_stacks.QUICK_SIZES)
    assert all(row[4] >= 1 for row in table.rows)  # the seeded components made stacks
