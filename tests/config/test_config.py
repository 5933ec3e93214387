"""Config parsing and the error catalogue: every problem at once, with sheet, row and column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook

from ingest.cli import main
from ingest.configuration import load_config
from ingest.errors import ConfigError
from tests.fixtures.sheet import sheet_header

HEADER = [
    "job_id",
    "enabled",
    "source_type",
    "source_name",
    "schema_name",
    "table_name",
    "load_type",
    "watermark_column",
    "primary_key",
    "initial_watermark",
    "schedule",
    "owner",
]


def write_xlsx(path: Path, rows: list[list], sheet: str = "jobs", header=HEADER, extra=None):
    workbook = Workbook()
    ws = workbook.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    for name, sheet_rows in (extra or {}).items():
        other = workbook.create_sheet(name)
        for row in sheet_rows:
            other.append(row)
    workbook.save(path)
    return path


GOOD = [
    [
        "001",
        "Y",
        "postgresql",
        "postgres_erp",
        "sales",
        "orders",
        "INCREMENTAL",
        "updated_at",
        "order_id",
        "2024-01-01",
        "DAILY",
        "ana",
    ],
    [
        "002",
        "N",
        "mysql",
        "shop_db",
        None,
        "customers",
        "FULL",
        None,
        None,
        None,
        "WEEKLY:MON",
        None,
    ],
]


def test_good_workbook_loads_into_frozen_typed_jobs(tmp_path):
    config = load_config(write_xlsx(tmp_path / "c.xlsx", GOOD))
    first, second = config.jobs
    assert first.job_id == "001" and first.enabled and first.load_type == "INCREMENTAL"
    assert first.primary_key == ("order_id",)
    assert first.schema_name == "sales"
    assert first.lake_table == "orders"
    assert second.enabled is False and second.schedule == "WEEKLY:MON"
    assert second.runs_on("MON") and not second.runs_on("TUE")
    assert [j.job_id for j in config.enabled_jobs] == ["001"]
    with pytest.raises(AttributeError):
        first.table_name = "x"  # frozen


def test_every_problem_is_reported_at_once_with_row_and_column(tmp_path):
    rows = [
        [
            "001",
            "Y",
            "postgresql",
            "pg",
            None,
            "orders; drop table x",
            "FULL",
            None,
            None,
            None,
            None,
            None,
        ],
        ["001", "Y", "db2", "pg", None, "items", "FULL", None, None, None, None, None],
        ["003", "Y", "mysql", "Bad Name", None, "t3", "SOMETIMES", None, None, None, None, None],
        ["004", "Y", "mysql", "m", None, "t4", "INCREMENTAL", None, None, None, None, None],
        ["005", "maybe", "mysql", "m", None, "t5", "FULL", None, "id, 1bad", None, "MONTHLY", None],
        ["006", "Y", "mysql", "m", "s1", "Orders", "FULL", None, None, None, None, None],
        ["007", "Y", "mysql", "m", "s2", "orders", "FULL", None, None, None, None, None],
    ]
    path = write_xlsx(tmp_path / "bad.xlsx", rows)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = {(p.row, p.column): p.message for p in caught.value.problems}
    text = str(caught.value)
    assert "not a plain SQL name" in problems[(2, "table_name")]
    assert "duplicate job_id '001'" in problems[(3, "job_id")]
    assert "'db2' is not one of" in problems[(3, "source_type")]
    assert "postgresql" in problems[(3, "source_type")]  # names the known ones
    assert "snake_case" in problems[(4, "source_name")]
    assert "SOMETIMES" in problems[(4, "load_type")]
    assert "needs a watermark_column" in problems[(5, "watermark_column")]
    assert "must be Y or N" in problems[(6, "enabled")]
    assert "'1bad'" in problems[(6, "primary_key")]
    assert "MONTHLY" in problems[(6, "schedule")]
    assert "same lake folder" in problems[(8, "table_name")]
    assert all(p.sheet == "jobs" for p in caught.value.problems)
    assert "sheet 'jobs', row 2, column 'table_name'" in text
    assert len(caught.value.problems) == 10


def test_missing_required_column_is_reported(tmp_path):
    header = [h for h in HEADER if h != "load_type"]
    rows = [[c for i, c in enumerate(GOOD[0]) if HEADER[i] != "load_type"]]
    with pytest.raises(ConfigError) as caught:
        load_config(write_xlsx(tmp_path / "c.xlsx", rows, header=header))
    assert [(p.row, p.column) for p in caught.value.problems] == [(1, "load_type")]


def test_legacy_source_config_workbook_loads_unchanged(tmp_path):
    header = [
        "Job_ID",
        "Enabled",
        "Source_Type",
        "Source_Name",
        "Schema_Name",
        "Table_Name",
        "Load_Type",
        "Watermark_Column",
        "Last_Watermark",
        "Target_Container",
        "Target_Folder_Path",
        "Chunk_Size",
        "Query_Filter",
        "Parallelism",
    ]
    rows = [
        [
            1,
            "Y",
            "PostgreSQL",
            "postgres_erp",
            "public",
            "orders",
            "Incremental",
            "updated_at",
            dt.datetime(2024, 3, 1, 12, 0),
            "raw",
            "erp/orders",
            50000,
            "status = 'x'",
            4,
        ],
        [
            2,
            "Y",
            "MSSQL",
            "crm",
            "dbo",
            "Accounts",
            "Full",
            None,
            None,
            "raw",
            None,
            None,
            None,
            None,
        ],
        [
            3,
            "N",
            "Azure_SQL",
            "finance",
            "dbo",
            "ledger",
            "FULL",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
        [
            4,
            "Y",
            "Oracle",
            "ora_hr",
            "HR",
            "EMPLOYEES",
            "FULL",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
    ]
    path = write_xlsx(
        tmp_path / "legacy.xlsx",
        rows,
        sheet="SourceConfig",
        header=header,
        extra={"Notes": [["free text"]]},
    )
    config = load_config(path)
    jobs = {j.job_id: j for j in config.jobs}
    assert jobs["1"].source_type == "postgresql" and jobs["1"].load_type == "INCREMENTAL"
    assert jobs["1"].initial_watermark == "2024-03-01T12:00:00"
    assert jobs["1"].chunk_size == 50000  # honoured
    assert jobs["2"].source_type == "mssql" and jobs["3"].source_type == "mssql"
    assert jobs["4"].source_type == "oracle" and jobs["4"].lake_table == "employees"
    ignored = " ".join(config.warnings)
    for column in ("target_container", "target_folder_path", "query_filter", "parallelism"):
        assert column in ignored  # reported, never silently dropped


def test_csv_config_with_the_same_columns(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text(
        ",".join(HEADER) + "\n"
        '001,Y,postgresql,postgres_erp,sales,orders,INCREMENTAL,updated_at,"order_id,line",'
        "2024-01-01,DAILY,ana\n",
        encoding="utf-8",
    )
    (job,) = load_config(path).jobs
    assert job.primary_key == ("order_id", "line")
    assert job.origin == "sheet 'jobs' row 2"


def test_bad_config_exits_2_and_loads_nothing(tmp_path, capsys, file_lake):
    path = write_xlsx(tmp_path / "bad.xlsx", [GOOD[0][:6] + ["WEEKLY", *GOOD[0][7:]]])
    code = main(["run", "--config", str(path), "--destination", file_lake])
    err = capsys.readouterr().err
    assert code == 2
    assert "'WEEKLY' is not one of: FULL, INCREMENTAL" in err
    assert list(Path(file_lake.removeprefix("file://")).iterdir()) == []


def test_unknown_job_filter_exits_2_naming_known_jobs(tmp_path, capsys, file_lake):
    path = write_xlsx(tmp_path / "c.xlsx", GOOD)
    code = main(["run", "--config", str(path), "--destination", file_lake, "--job", "999"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown job id(s): 999" in err and "001" in err


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.xlsx")
    other = tmp_path / "c.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match="expected an .xlsx"):
        load_config(other)


def test_timeouts_and_control_characters_are_checked_with_their_cell(tmp_path):
    """`timeout` takes seconds or a duration; a control character in any cell (the catalog,
    the data dictionary and the audit could not hold it) is refused, naming the cell; tabs and
    line breaks are text only in owner and notes."""
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "timeout",
            "owner",
            "notes",
        )
        + "\n"
        'a,Y,sqlite,shop,t1,FULL,90m,ana,"two\nlines"\n'
        "b,Y,sqlite,shop,t2,FULL,soon,bob,\n"
        "c,Y,sqlite,shop,t3,FULL,1h30m,car\x07ol,\n"
        "d,Y,sqlite,shop,t\x01x,FULL,,,\n"
        "e\te,Y,sqlite,shop,t5,FULL,0,,\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems: dict = {}
    for problem in caught.value.problems:
        problems[(problem.row, problem.column)] = (
            problems.get((problem.row, problem.column), "") + problem.message
        )
    assert "must be a number of seconds or a duration" in problems[(3, "timeout")]
    assert "U+0007" in problems[(4, "owner")]
    assert "U+0001" in problems[(5, "table_name")]
    assert "U+0009" in problems[(6, "job_id")]
    assert (6, "timeout") in problems  # 0 s is no timeout
    assert (2, "notes") not in problems and (2, "timeout") not in problems

    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "timeout",
            "notes",
        )
        + "\n"
        'a,Y,sqlite,shop,t1,FULL,90m,"two\nlines"\nb,Y,sqlite,shop,t2,FULL,1h30m,\n'
        "c,Y,sqlite,shop,t3,FULL,45,\n",
        encoding="utf-8",
    )
    jobs = load_config(path).jobs
    assert [j.timeout_s for j in jobs] == [5400.0, 5400.0, 45.0]
    assert jobs[0].notes == "two\nlines"
    # what validate accepts, the catalog writes (before, a control character crashed it)
    out = tmp_path / "catalog"
    lake = tmp_path / "lake"
    assert (
        main(["catalog", "--config", str(path), "--destination", str(lake), "--out", str(out)]) == 0
    )
    assert "two" in (out / "DATA_DICTIONARY.md").read_text(encoding="utf-8")


def test_incremental_jobs_without_a_key_are_warned_about(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "watermark_column",
            "primary_key",
        )
        + "\nk,Y,sqlite,shop,t1,INCREMENTAL,updated_at,id\n"
        "n,Y,sqlite,shop,t2,INCREMENTAL,updated_at,\nf,Y,sqlite,shop,t3,FULL,,\n",
        encoding="utf-8",
    )
    warnings = load_config(path).warnings
    (warning,) = [w for w in warnings if "primary_key" in w]
    assert warning.startswith("job n ") and "updated row shows up once per load" in warning
