"""The README's settings table is generated from the settings models; keep it current."""

from tools.settings_table import README, readme_with_table


def test_readme_settings_table_matches_the_code() -> None:
    readme = README.read_text()
    assert readme == readme_with_table(readme), (
        "README.md's settings table is stale: run .venv/bin/python tools/settings_table.py --write"
    )


def test_readme_shows_the_two_commands() -> None:
    readme = README.read_text()
    assert "make run" in readme and "make test" in readme
