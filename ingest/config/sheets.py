"""Reading a configuration file: every sheet of a workbook (or the one table of a CSV) as its
header and raw rows of text, with sheet names and row numbers for messages. No validation.

Bounded before it is parsed: the file's size, an .xlsx's decompressed size (the sum its zip
directory declares; Python's zip reader never inflates a member past it) and its number of
sheets are checked first; rows, columns and cell lengths while reading (`ingest.limits`). A
breach raises `LimitExceeded` with the problems found (sheet, row, column), and the file is
not read further.
"""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import Problem
from ingest.limits import (
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_CONFIG_FILE_BYTES,
    MAX_ROWS,
    MAX_SHEETS,
    MAX_XLSX_UNCOMPRESSED_BYTES,
)

#: a file past a limit stops being read after this many problems
MAX_LIMIT_PROBLEMS = 20


class LimitExceeded(ValueError):
    """The file is past a limit of `ingest.limits`; `problems` say where."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


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


def _texts(sheet: str, row: int, cells: tuple[Any, ...], headers: list[str]) -> list[str | None]:
    """A row's cell texts; problems for cells past MAX_CELL_CHARS and rows past MAX_COLUMNS."""
    problems = []
    if len(cells) > MAX_COLUMNS and any(c not in (None, "") for c in cells[MAX_COLUMNS:]):
        problems.append(
            Problem(f"has more than {MAX_COLUMNS:,} columns, the most a sheet may have", sheet, row)
        )
    texts = [cell_text(c) for c in cells[:MAX_COLUMNS]]
    for index, text in enumerate(texts):
        if text is not None and len(text) > MAX_CELL_CHARS:
            column = headers[index] if index < len(headers) and headers[index] else None
            problems.append(
                Problem(
                    f"the cell holds {len(text):,} characters; at most {MAX_CELL_CHARS:,} "
                    f"are allowed (it starts {text[:20]!r})",
                    sheet,
                    row,
                    column or f"#{index + 1}",
                )
            )
    if problems:
        raise LimitExceeded(problems)
    return texts


def rows_from_table(sheet: str, rows: Iterable[Sequence[Any]]) -> tuple[list[str], list[RawRow]]:
    """Header + raw rows of one table; LimitExceeded past the row, column or cell limits."""
    iterator = iter(rows)
    try:
        header = next(iterator)
    except StopIteration:
        return [], []
    problems: list[Problem] = []
    try:
        headers = [header_key(h) for h in _texts(sheet, 1, tuple(header), [])]
    except LimitExceeded as exc:
        raise LimitExceeded(exc.problems) from None
    out: list[RawRow] = []
    count = 0
    for index, cells in enumerate(iterator, start=2):
        try:
            texts = _texts(sheet, index, tuple(cells), headers)
        except LimitExceeded as exc:
            problems += exc.problems
            if len(problems) >= MAX_LIMIT_PROBLEMS:
                break
            continue
        if not any(texts):
            continue  # blank line
        count += 1
        if count > MAX_ROWS:
            problems.append(
                Problem(f"has more than {MAX_ROWS:,} rows, the most a sheet may have", sheet, index)
            )
            break
        values = {h: texts[i] if i < len(texts) else None for i, h in enumerate(headers) if h}
        out.append(RawRow(sheet, index, values))
    if problems:
        raise LimitExceeded(problems[:MAX_LIMIT_PROBLEMS])
    return [h for h in headers if h], out


def read_csv_table(path: Path, sheet: str) -> tuple[list[str], list[RawRow]]:
    """One CSV file as header + raw rows (size and cell limits; a malformed line is a
    problem with its line number)."""
    _check_size(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            return rows_from_table(sheet, reader)
        except csv.Error as exc:
            raise LimitExceeded(
                [Problem(f"cannot read this line: {exc}", sheet, reader.line_num)]
            ) from None
        except UnicodeDecodeError:
            raise LimitExceeded(
                [Problem("the file is not UTF-8 text; save it as CSV UTF-8", sheet)]
            ) from None


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_CONFIG_FILE_BYTES:
        raise LimitExceeded(
            [Problem(f"the file is {size:,} bytes; at most {MAX_CONFIG_FILE_BYTES:,} are allowed")]
        )


def _check_workbook(path: Path) -> None:
    """Before openpyxl inflates anything: a zip whose members add up to at most
    MAX_XLSX_UNCOMPRESSED_BYTES (a 200 KB file can declare 200 MB of XML)."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise LimitExceeded(
            [Problem("the file is not an .xlsx workbook (not a zip archive); save it as .xlsx")]
        ) from None
    if total > MAX_XLSX_UNCOMPRESSED_BYTES:
        raise LimitExceeded(
            [
                Problem(
                    f"the workbook unpacks to {total:,} bytes; at most "
                    f"{MAX_XLSX_UNCOMPRESSED_BYTES:,} are allowed (an oversized cell or sheet?)"
                )
            ]
        )


def read_sheets(path: Path) -> dict[str, tuple[list[str], list[RawRow]]]:
    """All sheets of a workbook (or the single table of a CSV) as header + raw rows;
    LimitExceeded for a file past the limits of `ingest.limits`."""
    if path.suffix.lower() == ".csv":
        return {DEFAULT_SHEET: read_csv_table(path, DEFAULT_SHEET)}
    _check_size(path)
    _check_workbook(path)
    # openpyxl: only for .xlsx files
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        if len(workbook.sheetnames) > MAX_SHEETS:
            raise LimitExceeded(
                [
                    Problem(
                        f"the workbook has {len(workbook.sheetnames):,} sheets; at most "
                        f"{MAX_SHEETS} are allowed"
                    )
                ]
            )
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
