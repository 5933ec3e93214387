"""Appending job rows to a configuration file (`dlt-ingest discover --out FILE`).

Existing rows are never changed or removed: new rows get job ids no existing row has (the
next numbers after the highest numeric id, zero-padded like them), and a table that already
has a job (same source, schema and table) gets no second one. A CSV gets the rows appended
(the whole file is rewritten only when its header lacks a column the new rows fill: then
every existing value is written back unchanged); a workbook gets them appended to its `jobs`
sheet (or its first sheet), other sheets untouched. Either file is replaced atomically (a
temporary file next to it, then a rename), so a crash never leaves half a file.

Every text cell goes through `ingest.cells.safe_cell`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ingest.cells import safe_cell
from ingest.config.sheets import DEFAULT_SHEET, header_key

#: the columns a discovered job row fills, in the order of a new file
JOB_COLUMNS = (
    "job_id",
    "enabled",
    "source_type",
    "source_name",
    "schema_name",
    "table_name",
    "load_type",
    "watermark_column",
    "primary_key",
    "owner",
    "notes",
)
XLSX_SUFFIXES = (".xlsx", ".xlsm")
_NUMBER = re.compile(r"^\d+$")


class JobFileError(ValueError):
    """The file cannot take job rows (wrong kind, unreadable); says what to do."""


@dataclass(frozen=True)
class JobFile:
    """The job rows a configuration file holds now (header keys in lower snake case)."""

    path: Path
    headers: tuple[str, ...]
    rows: tuple[Mapping[str, str], ...]

    def job_ids(self) -> set[str]:
        return {str(r.get("job_id") or "").strip() for r in self.rows} - {""}

    def configured_tables(self) -> dict[tuple[str, str, str], str]:
        """(source_name, schema_name, table_name) lower case -> job id, of the existing rows."""
        found: dict[tuple[str, str, str], str] = {}
        for row in self.rows:
            source, schema, table = (str(row.get(c) or "").strip().lower() for c in _TABLE_KEY)
            found.setdefault((source, schema, table), str(row.get("job_id") or ""))
        return found


_TABLE_KEY = ("source_name", "schema_name", "table_name")


def table_key(source_name: str, schema_name: str | None, table_name: str) -> tuple[str, str, str]:
    return (source_name.lower(), (schema_name or "").lower(), table_name.lower())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_job_file(path: Path) -> JobFile:
    """The rows of `path` (none when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return JobFile(path, (), ())
    if path.suffix.lower() == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        table = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    elif path.suffix.lower() in XLSX_SUFFIXES:
        sheet = _jobs_sheet(_load_workbook(path))
        table = [
            [_text(c) for c in row]
            for row in sheet.iter_rows(values_only=True)
            if any(c not in (None, "") for c in row)
        ]
    else:
        raise JobFileError(f"{path}: job rows go into a .csv or .xlsx file")
    if not table:
        return JobFile(path, (), ())
    headers = tuple(header_key(h) for h in table[0])
    rows = tuple(dict(zip(headers, row, strict=False)) for row in table[1:])
    return JobFile(path, headers, rows)


def next_job_ids(existing: Iterable[str], count: int) -> list[str]:
    """`count` new ids: the numbers after the highest numeric id, zero-padded like the ids
    (at least 3 digits), never one that exists."""
    existing = set(existing)
    numeric = [i for i in existing if _NUMBER.match(i)]
    width = max([3, *(len(i) for i in numeric)])
    number = max([0, *(int(i) for i in numeric)])
    ids: list[str] = []
    while len(ids) < count:
        number += 1
        candidate = f"{number:0{width}d}"
        if candidate not in existing:
            ids.append(candidate)
    return ids


def append_job_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append `rows` (JOB_COLUMNS keys) to `path`, creating it when missing; existing rows and
    other sheets stay as they are."""
    path = Path(path)
    if not rows:
        return
    if path.suffix.lower() == ".csv":
        _append_csv(path, rows)
    elif path.suffix.lower() in XLSX_SUFFIXES:
        _append_xlsx(path, rows)
    else:
        raise JobFileError(f"{path}: job rows go into a .csv or .xlsx file")


def _cells(headers: Sequence[str], row: Mapping[str, Any]) -> list[Any]:
    return [safe_cell(_text(row.get(h))) if row.get(h) is not None else "" for h in headers]


def _replace(path: Path, write: Any) -> None:
    """Write a new version of `path` next to it, then rename it over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _append_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    current = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    table = list(csv.reader(io.StringIO(current))) if current.strip() else []
    header = table[0] if table else list(JOB_COLUMNS)
    keys = [header_key(h) for h in header]
    missing = [c for c in JOB_COLUMNS if c not in keys and any(r.get(c) for r in rows)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table and not missing:
        # append below the existing text, untouched
        for row in rows:
            writer.writerow(_cells(keys, row))
        joiner = "" if current.endswith("\n") else "\n"
        text = current + joiner + out.getvalue()
    else:
        header = [*header, *missing]
        keys = [*keys, *missing]
        writer.writerow(header)
        for existing in table[1:]:
            writer.writerow([*existing, *([""] * (len(header) - len(existing)))])
        for row in rows:
            writer.writerow(_cells(keys, row))
        text = out.getvalue()
    _replace(path, lambda target: target.write_text(text, encoding="utf-8"))


def _openpyxl() -> ModuleType:
    """openpyxl: the one lazy import of it here."""
    # openpyxl: only when a workbook is read or written
    import openpyxl

    return openpyxl


def _load_workbook(path: Path) -> Any:
    try:
        return _openpyxl().load_workbook(path, keep_vba=path.suffix.lower() == ".xlsm")
    except Exception as exc:  # openpyxl raises many types for files it cannot read
        raise JobFileError(f"{path}: cannot read the workbook: {exc}") from None


def _jobs_sheet(workbook: Any) -> Any:
    for sheet in workbook.worksheets:
        if sheet.title.strip().lower() == DEFAULT_SHEET:
            return sheet
    return workbook.worksheets[0]


def _append_xlsx(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    if path.exists():
        workbook = _load_workbook(path)
        sheet = _jobs_sheet(workbook)
    else:
        workbook = _openpyxl().Workbook()
        sheet = workbook.active
        sheet.title = DEFAULT_SHEET
    header_cells = [c.value for c in sheet[1]] if sheet.max_row >= 1 else []
    keys = [header_key(h) for h in header_cells]
    while keys and not keys[-1]:
        keys.pop()
    if not any(keys):
        keys = []
    for column in JOB_COLUMNS:
        if column not in keys and (not keys or any(r.get(column) for r in rows)):
            keys.append(column)
            sheet.cell(row=1, column=len(keys), value=column)
    last = max(
        (
            r
            for r in range(1, sheet.max_row + 1)
            if any(c.value not in (None, "") for c in sheet[r])
        ),
        default=1,
    )
    for offset, row in enumerate(rows, start=1):
        for index, value in enumerate(_cells(keys, row), start=1):
            if value != "":
                sheet.cell(row=last + offset, column=index, value=value)
    _replace(path, workbook.save)
