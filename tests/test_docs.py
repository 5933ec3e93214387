"""The README's settings table and CLI table are checked against the code, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.cli import build_parser
from ingest.settings import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_settings_table_lists_exactly_the_catalogue():
    rows = [line for line in section("Settings").splitlines() if line.startswith("| `")]
    names = {
        name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]{3,})`", row.split("|")[1])
    }
    catalogue = {spec.name for spec in CATALOGUE}
    assert catalogue - names == set(), "settings missing from the README table"
    assert names - catalogue == set(), "README lists settings the code does not read"


def test_readme_settings_defaults_match_the_catalogue():
    rows = [line for line in section("Settings").splitlines() if line.startswith("| `")]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = [d.strip(" `") for d in cells[1].split(",")]
        if len(names) != len(defaults):
            continue  # a row of credentials without defaults ("-")
        for name, shown in zip(names, defaults, strict=True):
            spec = next(s for s in CATALOGUE if s.name == name)
            if spec.default is not None:
                assert shown == spec.default, (name, shown, spec.default)


def test_readme_cli_table_names_every_command():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    table = section("Command line: `dlt-ingest`")
    documented = set(re.findall(r"^\| `(\w[\w-]*)", table, flags=re.MULTILINE))
    assert set(commands) == documented
