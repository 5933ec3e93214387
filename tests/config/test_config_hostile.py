"""Hostile configuration files (issue 15, classes 4-6): whatever a jobs or api sheet holds
(CSV or xlsx), reading it ends in a validated config or a ConfigError listing problems - never
another exception, never a message quoting more than a short prefix of a bad value; files past
the limits (cell length, rows, decompressed size) are refused before they are parsed in full;
`WEEKLY:MONKEY` is not Monday."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from ingest.configuration import load_config
from ingest.errors import ConfigError
from ingest.limits import MAX_CELL_CHARS, MAX_QUOTED_CHARS, MAX_ROWS, MAX_XLSX_UNCOMPRESSED_BYTES

JOBS = ["job_id", "enabled", "source_type", "source_name", "schema_name", "table_name"]
JOBS += ["load_type", "watermark_column", "primary_key", "initial_watermark", "schedule"]
JOBS += ["owner", "chunk_size", "schema_policy", "table_format"]
API = ["job_id", "endpoint", "method", "params", "json_body", "data_selector", "paginator"]
API += ["limit", "total_path", "auth", "api_key_name", "incremental_param"]
GOOD_JOB = ["001", "Y", "rest_api", "crm", "", "items", "FULL", "", "", "", "", "", "", "", ""]

#: values that have broken readers before, and ordinary ones
NASTY = [
    "Y", "N", "FULL", "INCREMENTAL", "postgresql", "rest_api", "WEEKLY:MONKEY", "WEEKLY:MON",
    "=HYPERLINK(\"http://x\")", "[" * 3000 + "]" * 3000, '{"a": ' * 2000 + "1" + "}" * 2000,
    "1" * 5000, "NaN", "-1", "0", "orders; drop table x", "v1/items?x=1", "{id}", "$..[?(@",
    "offset", "cursor", "api_key", "basic", "a" * 200, "\u202e", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", " ", "'",
]  # fmt: skip
#: what openpyxl can store (it refuses most control characters)
CELL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x0b\x0c"),
    max_size=40,
).filter(lambda t: not any(ord(c) < 32 and c not in "\t\n\r" for c in t))
CELLS = st.one_of(st.sampled_from(NASTY), CELL_TEXT, st.none())


def rows_strategy(width: int, base: list[str] | None = None):
    row = st.lists(CELLS, min_size=width, max_size=width)
    return st.lists(row, min_size=0, max_size=4).map(lambda rows: ([base] if base else []) + rows)


def check(path: Path) -> None:
    """The property: a config or a ConfigError whose messages quote only short prefixes."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert len(str(problem)) < 600, str(problem)[:200]
            assert "[" * (MAX_QUOTED_CHARS + 10) not in str(problem)
            assert "1" * (MAX_QUOTED_CHARS + 10) not in str(problem)
    else:
        assert config.jobs
        for job in config.jobs:
            assert job.schedule == "DAILY" or job.schedule.split(":")[1] in (
                "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"
            )  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=rows_strategy(len(JOBS), GOOD_JOB), api=rows_strategy(len(API)))
def test_any_csv_config_is_a_config_or_a_config_error(tmp_path, jobs, api):
    path = write_csv(tmp_path / "jobs.csv", JOBS, jobs)
    write_csv(tmp_path / "jobs.api.csv", API, api)
    check(path)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=rows_strategy(len(JOBS), GOOD_JOB), api=rows_strategy(len(API)))
def test_any_xlsx_config_is_a_config_or_a_config_error(tmp_path, jobs, api):
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "jobs"
    sheet.append(JOBS)
    for row in jobs:
        sheet.append(row)
    other = workbook.create_sheet("api")
    other.append(API)
    for row in api:
        other.append(row)
    workbook.save(tmp_path / "c.xlsx")
    check(tmp_path / "c.xlsx")


def test_a_long_bad_value_is_quoted_as_a_short_prefix(tmp_path):
    path = write_csv(tmp_path / "j.csv", JOBS, [["x" * 5000 + "!", *GOOD_JOB[1:]]])
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.column == "job_id"
    assert f"{'x' * MAX_QUOTED_CHARS!r}... (5,001 characters)" in problem.message
    assert "x" * (MAX_QUOTED_CHARS + 1) not in problem.message


def test_an_oversized_cell_is_refused_naming_its_row_and_column(tmp_path):
    """(openpyxl itself cuts cells it writes to Excel's limit; other tools do not, and a CSV
    has no limit of its own: its reader allows 128 KB per field.)"""
    row = [*GOOD_JOB[:11], "o" * (MAX_CELL_CHARS + 1), *GOOD_JOB[12:]]
    with pytest.raises(ConfigError) as info:
        load_config(write_csv(tmp_path / "c.csv", JOBS, [row]))
    (problem,) = info.value.problems
    assert (problem.sheet, problem.row, problem.column) == ("jobs", 2, "owner")
    assert f"the cell holds {MAX_CELL_CHARS + 1:,} characters; at most" in problem.message
    assert len(str(problem)) < 200


def test_a_workbook_that_unpacks_past_the_limit_is_refused_before_parsing(tmp_path):
    """The issue's file: small on disk, huge inflated (here 60 MB of one repeated byte)."""
    workbook = Workbook()
    workbook.active.append(JOBS)
    workbook.save(tmp_path / "c.xlsx")
    with zipfile.ZipFile(tmp_path / "c.xlsx", "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", b"A" * (MAX_XLSX_UNCOMPRESSED_BYTES + 10**7))
    assert (tmp_path / "c.xlsx").stat().st_size < 200_000
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.xlsx")
    assert "the workbook unpacks to" in str(info.value) and "at most" in str(info.value)


def test_too_many_rows_and_a_broken_csv_are_config_errors(tmp_path):
    rows = [[f"j{i}", "Y", "sqlite", "s", "", f"t{i}", "FULL"] for i in range(MAX_ROWS + 1)]
    with pytest.raises(ConfigError, match=f"more than {MAX_ROWS:,} rows"):
        load_config(write_csv(tmp_path / "many.csv", JOBS[:7], rows))
    (tmp_path / "huge.csv").write_text("job_id,enabled\n1," + "Y" * 200_000 + "\n")
    with pytest.raises(ConfigError, match="row 2: cannot read this line: field larger than"):
        load_config(tmp_path / "huge.csv")
    (tmp_path / "latin.csv").write_bytes("job_id,enabled\nä,Y\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "latin.csv")
    (tmp_path / "fake.xlsx").write_text("not a zip")
    with pytest.raises(ConfigError, match="not an .xlsx workbook"):
        load_config(tmp_path / "fake.xlsx")


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("WEEKLY:MON", "WEEKLY:MON"),
        ("weekly:monday", "WEEKLY:MON"),
        ("WEEKLY: Sunday", "WEEKLY:SUN"),
        ("", "DAILY"),
        ("daily", "DAILY"),
        ("WEEKLY:MONKEY", None),
        ("WEEKLY:MO", None),
        ("WEEKLY:", None),
        ("MONTHLY:MON", None),
    ],
)
def test_schedule_accepts_weekday_names_only(tmp_path, schedule, expected):
    row = ["j1", "Y", "sqlite", "s", "", "t", "FULL", "", "", "", schedule, "", "", "", ""]
    path = write_csv(tmp_path / "s.csv", JOBS, [row])
    if expected is None:
        with pytest.raises(ConfigError, match="must be DAILY or WEEKLY:<day>") as info:
            load_config(path)
        assert info.value.problems[0].column == "schedule"
    else:
        assert load_config(path).jobs[0].schedule == expected


def test_deeply_nested_json_in_the_api_sheet_is_a_problem(tmp_path):
    path = write_csv(tmp_path / "jobs.csv", JOBS, [GOOD_JOB])
    deep = json.dumps({"a": 1})
    for _ in range(3000):
        deep = '{"a": ' + deep + "}"
    write_csv(
        tmp_path / "jobs.api.csv", API, [["001", "v1/items", "GET", deep, "", "", "single_page"]]
    )
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load_config(path)
    assert info.value.problems[0].column == "params"
