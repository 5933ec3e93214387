"""Reading a configuration file: every sheet of a workbook (or the one table of a CSV) as its
header and raw rows of text, with sheet names and row numbers for messages. No validation."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the sheet of the jobs (any case); a workbook without one uses its first sheet
DEFAULT_SHEET = "jobs"


@dataclass(frozen=True)
class RawRow:
    sheet: str
    row: int
    values: Mapping[str, Any]


def header_key(value: Any) -> str:
    return str(value or "").strip().lower().replace(" ", "_").replace("-", "_")


def cell_text(value: Any) -> str | None:
    """Cell value as text; numbers that are whole become '1' not '1.0'; dates ISO."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def rows_from_table(sheet: str, rows: Iterable[tuple[Any, ...]]) -> tuple[list[str], list[RawRow]]:
    iterator = iter(rows)
    try:
        header = next(iterator)
    except StopIteration:
        return [], []
    headers = [header_key(h) for h in header]
    out: list[RawRow] = []
    for index, cells in enumerate(iterator, start=2):
        texts = [cell_text(c) for c in cells]
        if not any(texts):
            continue  # blank line
        values = {h: texts[i] if i < len(texts) else None for i, h in enumerate(headers) if h}
        out.append(RawRow(sheet, index, values))
    return [h for h in headers if h], out


def read_sheets(path: Path) -> dict[str, tuple[list[str], list[RawRow]]]:
    """All sheets of a workbook (or the single table of a CSV) as header + raw rows."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return {DEFAULT_SHEET: rows_from_table(DEFAULT_SHEET, csv.reader(handle))}
    # openpyxl: only for .xlsx files
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return {
            ws.title: rows_from_table(ws.title, ws.iter_rows(values_only=True))
            for ws in workbook.worksheets
        }
    finally:
        workbook.close()


def pick_jobs_sheet(sheets: Mapping[str, Any]) -> str | None:
    for name in sheets:
        if name.strip().lower() == DEFAULT_SHEET:
            return name
    return next(iter(sheets), None)
