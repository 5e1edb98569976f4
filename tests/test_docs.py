"""The documentation site stays true to the code: the settings table, a runbook for every
alert, and every problem type the API can answer. (`make docs` and `make test` build the
site itself with --strict, which catches broken links and pages missing from the nav.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tools.settings_table import PAGE, page_with_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RUNBOOKS = DOCS / "runbooks"
RUNBOOK_SECTIONS = ["Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation"]
API_SOURCE = ROOT / "services" / "upload-api" / "src" / "imgflow_upload_api"
# Problem(422, "code", ...), on one line or spread over several
PROBLEM_CALL = re.compile(r'Problem\(\s*(?:status=)?[\w.]+,\s*(?:code=)?"([a-z0-9-]+)"')


def site_url() -> str:
    # mkdocs.yml holds a !!python/name tag, which safe_load refuses; one line is enough.
    found = re.search(r"^site_url:\s*(\S+)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert found, "mkdocs.yml has no site_url"
    return found.group(1)


def kebab(alert: str) -> str:
    """ImgflowApi5xxRatio -> imgflow-api-5xx-ratio: the runbook page's name."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[a-z])(?=[0-9])", "-", alert).lower()


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_kebab_case_names() -> None:
    assert kebab("ImgflowApi5xxRatio") == "imgflow-api-5xx-ratio"
    assert kebab("ImgflowApiLatencyP99") == "imgflow-api-latency-p99"
    assert kebab("ImgflowNoThumbnailerWorker") == "imgflow-no-thumbnailer-worker"


def test_settings_page_table_matches_the_code() -> None:
    page = PAGE.read_text()
    assert page == page_with_table(page), (
        "docs/operating/settings.md is stale: run .venv/bin/python tools/settings_table.py --write"
    )


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_links_a_runbook_page_with_every_section(rule: dict) -> None:
    name = rule["alert"]
    url = rule.get("annotations", {}).get("runbook_url")
    expected = f"{site_url()}runbooks/{kebab(name)}/"
    assert url == expected, f"{name}: runbook_url must be {expected}"
    # The URL maps to a page the way MkDocs publishes it (use_directory_urls).
    page = DOCS / (url.removeprefix(site_url()).rstrip("/") + ".md")
    assert page.is_file(), f"{name}: no runbook page {page.relative_to(ROOT)}"
    text = page.read_text()
    assert text.startswith(f"# {name}\n"), f"{page.name} must be titled with the alert's name"
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == RUNBOOK_SECTIONS, f"{page.name}: sections {headings}"
    for section in RUNBOOK_SECTIONS:
        body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert body.strip(), f"{page.name}: section {section} is empty"


def test_every_runbook_page_belongs_to_an_alert_and_the_index_lists_it() -> None:
    names = {kebab(rule["alert"]) for rule in alerts()}
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"index"}
    assert pages == names, f"runbook pages without an alert: {sorted(pages - names)}"
    index = (RUNBOOKS / "index.md").read_text()
    unlisted = sorted(n for n in names if f"({n}.md)" not in index)
    assert not unlisted, f"docs/runbooks/index.md does not link {unlisted}"


def problem_codes() -> set[str]:
    """Every problem code the API's source can answer with."""
    found: set[str] = set()
    for path in API_SOURCE.rglob("*.py"):
        source = path.read_text()
        found |= set(
            re.findall(r'Problem\(\s*(?:status=)?[\w.]+,\s*(?:code=)?"([a-z0-9-]+)"', source)
        )
        found |= set(re.findall(r'Invalid\w*\(\s*"([a-z0-9-]+)"', source))
    table = (API_SOURCE / "problems.py").read_text()
    found |= set(re.findall(r'\d{3}: \("([a-z0-9-]+)"', table))
    return found


def test_the_errors_page_lists_every_problem_type() -> None:
    codes = problem_codes()
    assert {"image-not-found", "bad-webhook-url", "not-found"} <= codes  # the scan works
    page = (DOCS / "api" / "errors.md").read_text()
    missing = sorted(code for code in codes if f"`{code}`" not in page)
    assert not missing, f"docs/api/errors.md does not list {missing}"


def docs_page(url_path: str) -> Path | None:
    """The page MkDocs publishes at ``url_path`` (``a/b/`` is a/b.md or a/b/index.md)."""
    stem = url_path.strip("/")
    for candidate in (DOCS / f"{stem}.md", DOCS / stem / "index.md"):
        if candidate.is_file():
            return candidate
    return None


def test_links_from_the_readmes_into_the_docs_lead_to_pages() -> None:
    published = re.compile(re.escape(site_url()) + r"([\w/.-]*)")
    relative = re.compile(r"\]\((docs/[\w/.-]+\.md)(?:#[\w-]+)?\)")
    broken = []
    for readme in sorted(ROOT.glob("**/README.md")):
        if any(part.startswith(".") for part in readme.relative_to(ROOT).parts):
            continue  # .venv, .tools
        text = readme.read_text()
        broken += [
            f"{readme.relative_to(ROOT)}: {m}" for m in published.findall(text) if not docs_page(m)
        ]
        if readme.parent == ROOT:
            broken += [
                f"README.md: {m}" for m in relative.findall(text) if not (ROOT / m).is_file()
            ]
    assert not broken, broken
