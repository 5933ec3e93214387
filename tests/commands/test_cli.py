"""The command line as a user meets it, through the installed `dlt-ingest` in a subprocess:
--version, help text on every option, rich on a terminal and plain text when piped, --json on
query and validate, NULL shown distinctly from an empty text, and patterns in table_name
refused with a pointer to `discover`."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from pathlib import Path

import pytest

from ingest.cli import all_parsers, build_parser
from tests.cli import clean_env, dlt_ingest, dlt_ingest_on_terminal
from tests.fixtures.sheet import sheet_header

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_version_names_ours_dlt_and_python():
    from importlib.metadata import version

    proc = dlt_ingest("--version", env=clean_env(Path("/tmp")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"dlt-ingest {version('dlt-ingest')} (dlt {version('dlt')}, ")
    assert "Python 3." in proc.stdout


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for name, each in all_parsers(parser):
        for action in each._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_help_text():
    parser = build_parser(terminal=False)
    commands = [name for name, _ in all_parsers(parser)]
    assert len(commands) >= 14  # the main parser, every command and sub-command
    assert "dlt-ingest discover" in commands or "python -m ingest discover" in commands
    assert options_without_help(parser) == []


def test_the_help_check_can_fail():
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers().add_parser("y")
    sub.add_argument("--z")
    assert options_without_help(parser) == ["x y --z"]


def test_options_work_before_and_after_the_command(tmp_path):
    env = clean_env(tmp_path)
    for args in (["--log-format", "json", "history"], ["history", "--log-format", "json", "-q"]):
        proc = dlt_ingest(*args, "--destination", (tmp_path / "lake").as_uri(), env=env)
        assert proc.returncode == 0, proc.stderr
    bad = dlt_ingest("history", env={**env, "INGEST_LOG_FORMAT": "yaml"})
    assert bad.returncode == 2
    assert "INGEST_LOG_FORMAT='yaml' must be one of text, json" in bad.stderr


def test_help_is_rich_on_a_terminal_and_plain_when_piped(tmp_path):
    env = clean_env(tmp_path)
    piped = dlt_ingest("discover", "--help", env=env)
    assert piped.returncode == 0
    assert piped.stdout.startswith("usage: dlt-ingest discover")
    assert "\x1b[" not in piped.stdout
    on_terminal = dlt_ingest_on_terminal("discover", "--help", env=env)
    assert on_terminal.returncode == 0
    assert "\x1b[" in on_terminal.terminal  # styled by rich-argparse
    text = ANSI.sub("", on_terminal.terminal)
    assert "Usage: dlt-ingest discover" in text and "--tables" in text


@pytest.fixture
def lake_with_nulls(tmp_path) -> tuple[str, dict[str, str]]:
    """A lake holding one table whose text column has NULL, '' and a word."""
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT, amount NUMERIC(30,10), "
            "big INTEGER)"
        )
        conn.executemany(
            "INSERT INTO notes VALUES (?, ?, ?, ?)",
            [(1, None, "1.5", 2**53 + 1), (2, "", None, 7), (3, "plain", "0.1", None)],
        )
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\n"
        "n1,Y,sqlite,notes_src,notes,FULL\n",
        encoding="utf-8",
    )
    env = clean_env(tmp_path, SOURCES__NOTES_SRC__PATH=str(db))
    lake = (tmp_path / "lake").as_uri()
    ran = dlt_ingest("run", "--config", str(config), "--destination", lake, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return lake, env


SQL = "select id, note from notes_src.notes order by id"


def test_query_shows_null_distinct_from_empty_text_and_json_keeps_values(lake_with_nulls):
    lake, env = lake_with_nulls
    plain = dlt_ingest("query", "--destination", lake, SQL, env=env)
    assert plain.returncode == 0, plain.stderr
    lines = [line.split() for line in plain.stdout.splitlines()[2:-1]]  # not "3 row(s)"
    rows = {cells[0]: cells for cells in lines if cells and cells[0].isdigit()}
    assert rows["1"] == ["1", "NULL"]
    assert rows["2"] == ["2"]  # the empty text shows as nothing
    assert rows["3"] == ["3", "plain"]

    as_json = dlt_ingest(
        "query", "--destination", lake, "--json",
        "select id, note, amount, big from notes_src.notes order by id", env=env,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["columns"] == ["id", "note", "amount", "big"]
    assert payload["rows"] == [
        [1, None, "1.5000000000", str(2**53 + 1)],  # exact: text where a float would round
        [2, "", None, 7],
        [3, "plain", "0.1000000000", None],
    ]
    assert payload["truncated"] is False and payload["views"] == ["notes_src__notes.sql"]


def test_tables_are_rich_on_a_terminal_and_plain_when_piped(lake_with_nulls):
    lake, env = lake_with_nulls
    run = dlt_ingest_on_terminal("query", "--destination", lake, SQL, env=env)
    assert run.returncode == 0, run.piped
    assert "\x1b[1m" in run.terminal  # bold header
    assert "\x1b[2;3mNULL" in run.terminal  # NULL dimmed and in italics
    assert "─" in run.terminal  # rich's rule under the header
    plain = dlt_ingest("query", "--destination", lake, SQL, env=env)
    assert "\x1b[" not in plain.stdout and "─" not in plain.stdout
    assert plain.stdout.splitlines()[1].startswith("--")


def test_validate_json(tmp_path):
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\n"
        "a,Y,sqlite,good,t,FULL\nb,Y,sqlite,gone,t,FULL\nc,N,sqlite,good,u,FULL\n",
        encoding="utf-8",
    )
    env = clean_env(tmp_path, SOURCES__GOOD__PATH=str(db))
    proc = dlt_ingest("validate", "--config", str(config), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["jobs"] == 3 and report["enabled"] == 2
    assert "checks" not in report

    proc = dlt_ingest("validate", "--config", str(config), "--json", "--check-connections", env=env)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    checks = {c["job_id"]: c for c in report["checks"]}
    assert checks["a"]["status"] == "OK" and checks["a"]["error"] == ""
    assert checks["b"]["status"] == "FAILED"
    assert "missing connection setting(s) path" in checks["b"]["error"]
    assert report["ok"] is False

    bad = tmp_path / "bad.csv"
    bad.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\nx,Y,sqlite,good,*,FULL\n",
        encoding="utf-8",
    )
    proc = dlt_ingest("validate", "--config", str(bad), "--json", env=env)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    (problem,) = report["problems"]
    assert "row 2, column 'table_name'" in problem
    assert "'*' is a pattern" in problem and "dlt-ingest discover --source NAME" in problem

    # without --json the same problem is an error on stderr, exit 2
    proc = dlt_ingest("validate", "--config", str(bad), env=env)
    assert proc.returncode == 2 and "is a pattern" in proc.stderr


def test_validate_prints_each_failure_whole_below_the_table(tmp_path):
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\nb,Y,sqlite,gone,t,FULL\n",
        encoding="utf-8",
    )
    proc = dlt_ingest(
        "validate", "--config", str(config), "--check-connections", env=clean_env(tmp_path)
    )
    assert proc.returncode == 1
    assert re.search(r"^b\s+gone\s+t\s+FAILED$", proc.stdout, re.MULTILINE)
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("job b: ")]
    assert line.endswith("(2) a table [sources.gone.credentials] with path")  # not cut short
