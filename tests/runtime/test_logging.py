"""One log for the framework's records and dlt's, through the installed `dlt-ingest`: text with
the date and UTC offset, or one JSON object per line; dlt's expected JSON-column warnings
explained once, not per job; a live progress line on a terminal and none when piped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli import clean_env, dlt_ingest, dlt_ingest_on_terminal
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER, read_lake_table
from tests.fixtures.sheet import TABLE_JOB, sheet_header

SOURCE = "logs_pg"
#: 2026-12-07T03:54:42.607+01:00 INFO    [run-... j1] logger: message
TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) +"
    r"\[(?P<run>\S+) (?P<job>\S+)\] (?P<logger>[\w.]+): (?P<message>.*)$"
)
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
RAW_EXPECTED = (
    "It is up to destination to coerce the differences",
    "require serialization to STRING",
    "Using fallback strategies",
)


@pytest.fixture
def json_tables(pg, tmp_path) -> Path:
    """Two tables with a jsonb column (dlt warns about each of them) whose 300 rows share one
    updated_at (dlt's cursor warning); two INCREMENTAL jobs."""
    for table in ("docs", "more_docs"):
        pg.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, body jsonb, "
            "updated_at timestamptz NOT NULL)"
        )
        pg.execute(
            f"INSERT INTO {table} SELECT g, jsonb_build_object('n', g, 'tags', "
            "jsonb_build_array('a', g)), timestamptz '2024-05-01 10:00:00+00' "
            "FROM generate_series(1, 300) g"
        )
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + "\n"
        f"j1,Y,postgresql,{SOURCE},{pg.name},docs,INCREMENTAL,updated_at,id\n"
        f"j2,Y,postgresql,{SOURCE},{pg.name},more_docs,INCREMENTAL,updated_at,id\n",
        encoding="utf-8",
    )
    return config


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path,
        SOURCES__LOGS_PG__CREDENTIALS=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}",
        **extra,
    )


def run(config: Path, lake: Path, env: dict[str, str], *options: str):
    proc = dlt_ingest(
        "run", "--config", str(config), "--destination", lake.as_uri(), *options, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_text_format_for_ours_and_dlts_records(json_tables, pg, tmp_path):
    proc = run(json_tables, tmp_path / "lake", env_for(tmp_path), "--verbose")
    lines = proc.stderr.splitlines()
    assert lines
    parsed = [TEXT_LINE.match(line) for line in lines]
    assert [line for line, match in zip(lines, parsed, strict=True) if not match] == []
    records = [m.groupdict() for m in parsed if m]
    run_id = next(r["run"] for r in records if r["run"].startswith("run-"))
    ours = [r for r in records if r["logger"] == "ingest.job.run" and r["job"] == "j1"]
    assert ours[0]["message"].startswith("job j1 started") and ours[0]["run"] == run_id
    # dlt's records (its progress, shown with --verbose) in our format, with each job's id
    dlt = [r for r in records if r["logger"] == "dlt"]
    # (a record dlt writes outside a job, e.g. when its runtime starts, has no job id: "-")
    assert {r["job"] for r in dlt} - {"-"} == {"j1", "j2"}
    assert {r["run"] for r in dlt if r["job"] != "-"} == {run_id}
    # dlt's own format never appears ("2026-12-07 03:54:42,607|[WARNING]|...")
    assert "|[WARNING]|" not in proc.stderr and "|[INFO]|" not in proc.stderr
    # dlt's warnings about JSON columns never reach the user raw (the type map hands dlt the
    # JSON text; the explanation is tested below)
    for raw in RAW_EXPECTED:
        assert raw not in proc.stderr
    # and what it explains is true: the JSON landed as its JSON text
    landed = read_lake_table((tmp_path / "lake").as_uri(), SOURCE, "docs").to_pylist()
    by_id = {row["id"]: json.loads(row["body"]) for row in landed}
    assert by_id[7] == {"n": 7, "tags": ["a", 7]} and len(by_id) == 300


def test_json_format_one_object_per_line_with_run_and_job_ids(json_tables, tmp_path):
    for options, extra in (
        (("--log-format", "json", "--verbose"), {}),
        (("--job", "j1", "--job", "j2"), {"INGEST_LOG_FORMAT": "json"}),  # the setting
    ):
        lake = tmp_path / f"lake{len(options)}"
        proc = run(json_tables, lake, env_for(tmp_path, **extra), *options)
        records = [json.loads(line) for line in proc.stderr.splitlines()]  # every line
        assert records
        for record in records:
            assert set(record) >= {"time", "level", "logger", "message", "run_id", "job_id"}
            assert ISO_WITH_OFFSET.match(record["time"]), record["time"]
        ours = [r for r in records if r["logger"] == "ingest.job.run" and r["job_id"] == "j2"]
        assert ours and ours[0]["message"].startswith("job j2 started")
        assert ours[0]["run_id"].startswith("run-")
        dlt = [r for r in records if r["logger"] == "dlt"]
        if "--verbose" in options:  # dlt's progress records, with the job ids
            assert {r["job_id"] for r in dlt} - {"-"} == {"j1", "j2"}
        else:  # without it, dlt says nothing in this run
            assert dlt == []
        for raw in RAW_EXPECTED:
            assert raw not in proc.stderr


@pytest.fixture
def slow_table(pg, tmp_path) -> Path:
    """A view that yields 2,500 rows at about 2 ms each: a job of several seconds. The pause
    is in a column (a function declared STABLE, so that the reconciliation's count(*), which
    does not read the column, does not wait too)."""
    pg.execute(
        "CREATE FUNCTION slow_text(g int) RETURNS text LANGUAGE plpgsql STABLE AS "
        "$$ BEGIN PERFORM pg_sleep(0.002); RETURN md5(g::text); END $$"
    )
    pg.execute(
        "CREATE VIEW slow AS SELECT g AS id, slow_text(g) AS v FROM generate_series(1, 2500) g"
    )
    config = tmp_path / "slow.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
        )
        + "\n"
        f"p1,Y,postgresql,{SOURCE},{pg.name},slow,FULL\n",
        encoding="utf-8",
    )
    return config


LIVE = re.compile(r"job p1 slow: [\d,]+ rows, [\d,]+ rows/s, \d+\.\d s")


def test_a_live_progress_line_on_a_terminal_and_none_when_piped(slow_table, tmp_path):
    # rows arrive in batches of 100 (dlt's pyarrow backend): progress moves while it reads
    env = env_for(tmp_path, INGEST_BACKEND="pyarrow", INGEST_CHUNK_SIZE="100")
    args = ("run", "--config", str(slow_table))
    on_terminal = dlt_ingest_on_terminal(
        *args, "--destination", (tmp_path / "a").as_uri(), env=env, stream="stderr"
    )
    assert on_terminal.returncode == 0, on_terminal.terminal + on_terminal.piped
    drawn = LIVE.findall(on_terminal.terminal)
    assert len(drawn) >= 2, on_terminal.terminal  # redrawn in place while the job ran
    assert "\r\x1b[K" + drawn[0] in on_terminal.terminal
    rows = [int(text.split(": ")[1].split(" rows")[0].replace(",", "")) for text in drawn]
    assert rows == sorted(rows) and rows[-1] <= 2500
    # the line is cleared before the next record: the job's end is a line of its own
    finished = re.search(r"\r\x1b\[K[^\r\n]*job p1 finished: 2,500 rows", on_terminal.terminal)
    assert finished, on_terminal.terminal
    assert "2,500" in on_terminal.piped  # the summary table went to stdout (a pipe here)

    piped = dlt_ingest(*args, "--destination", (tmp_path / "b").as_uri(), env=env)
    assert piped.returncode == 0, piped.stderr
    assert "rows/s" not in piped.stderr and "\r" not in piped.stderr and "\x1b[" not in piped.stderr
    assert "job p1 finished: 2,500 rows" in piped.stderr


def test_an_expected_dlt_warning_is_explained_once_then_dropped():
    import logging

    from ingest.runtime.logsetup import ExpectedDltWarnings

    expected = ExpectedDltWarnings()
    records = [
        logging.LogRecord("dlt", logging.WARNING, "f", 1, "x: %s", (raw,), None)
        for raw in (
            RAW_EXPECTED[0],
            RAW_EXPECTED[0],
            "Received `data_type='json'`",
            RAW_EXPECTED[0],
        )
    ]
    other = logging.LogRecord("dlt", logging.WARNING, "f", 1, "something else", None, None)
    assert [expected.filter(r) for r in [*records, other]] == [True, False, True, False, True]
    assert records[0].levelname == "INFO" and "column hints" in records[0].getMessage()
    assert records[2].levelname == "INFO" and "json/jsonb" in records[2].getMessage()
    assert other.levelname == "WARNING" and other.getMessage() == "something else"


def test_dlt_keeps_our_handler_when_it_initialises_its_logging_again():
    """dlt (re)creates its logger with a format of its own on every runtime initialisation:
    the routing survives it, in the CLI and in the function app (root handlers only)."""
    import io
    import logging

    from dlt.common import logger as dlt_logger

    from ingest.runtime.logcontext import job_context
    from ingest.runtime.logsetup import IngestHandler, ToRootLogger, configure_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging(logging.INFO, "json", stream=stream)
        dlt_logger._create_logger("dlt", "WARNING", "{asctime}|[{levelname}]|{message}", "p", {})
        (handler,) = logging.getLogger("dlt").handlers
        assert isinstance(handler, ToRootLogger)
        with job_context("run-1", "j7"):
            logging.getLogger("dlt").warning("from dlt %s", 42)
            logging.getLogger("dlt").warning("x: %s", RAW_EXPECTED[0])  # expected: explained
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert {(r["logger"], r["run_id"], r["job_id"]) for r in lines} == {("dlt", "run-1", "j7")}
        assert lines[0]["message"] == "from dlt 42" and lines[0]["level"] == "WARNING"
        # the explanation is once per process (an earlier test may have shown it): never raw
        assert all(RAW_EXPECTED[0] not in r["message"] for r in lines)
        assert [h for h in root.handlers if isinstance(h, IngestHandler)]
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_ingest", False):
                root.removeHandler(handler)
        for handler in saved[0]:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved[1])
