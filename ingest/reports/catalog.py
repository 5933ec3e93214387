"""The generated jobs catalog and data dictionary: never hand-maintained.

`write_catalog(config_path, destination, out_dir)` writes
- `PRODUCTION_JOBS_CATALOG.xlsx`: one row per configured job with its last run from the
  audit (Job ID, Source Type, Source Name, Table Name, Load Type, Schedule, Owner, Status,
  Last Run Status, Last Run Rows, Last Run At);
- `DATA_DICTIONARY.md`: per table its source, lake path pattern, load type and watermark,
  owner, the key the job uses (configured, else the table's own as stored by dlt), typical
  rows per day (median over days: FULL the day's latest snapshot, INCREMENTAL the rows that
  day's loads landed, each load once), and its columns with
  the lake types from the dlt schema stored in the lake (`_dlt_version`) next to the Parquet
  type of the newest data file.

Sources of truth: the job configuration, the lake's stored schemas, the audit CSVs.
Every text cell of the workbook goes through `ingest.cells.safe_cell`: config text such
as `=HYPERLINK(...)` is shown as text, never run as a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from openpyxl import Workbook
from openpyxl.styles import Font

from ingest.cells import safe_cell
from ingest.checks.drift import stored_schema, table_schema
from ingest.config import JobConfig
from ingest.configuration import load_config
from ingest.lake.delta import delta_schema
from ingest.lake.destination import Destination
from ingest.lake.layout import DELTA_LOG, METADATA_DIR, audit_file_day, table_pattern
from ingest.lake.loads import is_delta_table, table_files
from ingest.vocabulary import LoadType, Status

CATALOG_FILE = "PRODUCTION_JOBS_CATALOG.xlsx"
DICTIONARY_FILE = "DATA_DICTIONARY.md"
CATALOG_COLUMNS = (
    "Job ID",
    "Source Type",
    "Source Name",
    "Table Name",
    "Load Type",
    "Schedule",
    "Owner",
    "Status",
    "Last Run Status",
    "Last Run Rows",
    "Last Run At",
)


# ------------------------------------------------------------------------------------------
# reading the lake


def read_all_audit(dest: Destination, fs: Any = None) -> list[dict[str, str]]:
    """Every audit row in the lake, each with `_day` (the audit file's date)."""

    fs = fs or dest.filesystem()
    try:
        paths = sorted(fs.ls(dest.path(METADATA_DIR), detail=False))
    except FileNotFoundError:
        return []
    rows: list[dict[str, str]] = []
    for path in paths:
        day = audit_file_day(path)
        if day is None:
            continue
        with fs.open(path, "r", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(io.StringIO(handle.read())):
                row["_day"] = f"{day:%Y%m%d}"
                rows.append(row)
    return rows


def last_runs(rows: Iterable[Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """job_id -> its newest audit row (by finished_at, then started_at)."""
    newest: dict[str, dict[str, str]] = {}
    for row in rows:
        key = (row.get("finished_at") or row.get("started_at") or "", row.get("_day") or "")
        current = newest.get(row.get("job_id") or "")
        if current is None or key >= (
            current.get("finished_at") or current.get("started_at") or "",
            current.get("_day") or "",
        ):
            newest[row.get("job_id") or ""] = dict(row)
    return newest


def typical_rows_per_day(rows: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """job_id -> median over the days with a successful load of that day's rows: for a FULL
    load the rows of the day's latest snapshot (several snapshots a day are not added up),
    for INCREMENTAL (and backfill) loads the rows their loads of that day landed. A load
    reported twice (a retried task reports the load it already made) counts once."""
    snapshots: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    increments: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if row.get("status") not in (Status.SUCCESS, Status.WARN):
            continue
        try:
            rows_loaded = int(row.get("rows_loaded") or 0)
        except ValueError:
            continue
        job, day = row.get("job_id") or "", row.get("_day") or ""
        load = row.get("load_id") or row.get("run_id") or ""
        if (row.get("load_type") or "").upper() == LoadType.FULL:
            when = (row.get("finished_at") or row.get("started_at") or "", load)
            latest = snapshots[job].get(day)
            if latest is None or when >= (latest[0], ""):
                snapshots[job][day] = (when[0], rows_loaded)
        else:
            increments[job][day][load] = rows_loaded
    per_job: dict[str, dict[str, int]] = defaultdict(dict)
    for job, days in increments.items():
        for day, loads in days.items():
            per_job[job][day] = sum(loads.values())
    for job, snapshot_days in snapshots.items():
        for day, (_, count) in snapshot_days.items():
            per_job[job][day] = count
    return {job: int(statistics.median(days.values())) for job, days in per_job.items() if days}


def key_in_use(job: JobConfig, table: Mapping[str, Any] | None) -> str:
    """The key the job uses, and where it comes from: the configured primary_key, else the
    table's own primary key as dlt reflected and stored it."""
    if job.primary_key:
        return f"{', '.join(job.primary_key)} (configured)"
    stored = [
        name
        for name, column in ((table or {}).get("columns") or {}).items()
        if column.get("primary_key")
    ]
    if stored:
        return f"{', '.join(stored)} (the table's primary key)"
    if table:
        return "- (none configured, the table has none: whole rows are compared)"
    return "- (none configured; the table's own key is shown once the job has loaded)"


def parquet_types(dest: Destination, job: JobConfig, fs: Any = None) -> dict[str, str]:
    """column -> Arrow type of the table's newest data file (Parquet footer or Delta)."""

    fs = fs or dest.filesystem()
    dataset, table = job.source_name, job.lake_table
    if is_delta_table(dest, dataset, table, fs):
        schema = delta_schema(dest, dataset, table)
    else:
        files = table_files(dest, dataset, table, fs)
        if not files:
            return {}
        with fs.open(files[-1], "rb") as handle:
            schema = pq.ParquetFile(handle).schema_arrow
    return {field.name: str(field.type) for field in schema} if schema is not None else {}


# ------------------------------------------------------------------------------------------
# writing


def _layout(job: JobConfig) -> str:
    if job.table_format == "delta":
        return f"{job.source_name}/{job.lake_table}/ (Delta table: `{DELTA_LOG}/` + data files)"
    return table_pattern(job.source_name, job.lake_table)


def _type_text(column: Mapping[str, Any]) -> str:
    data_type = str(column.get("data_type") or "")
    if data_type == "decimal" and column.get("precision") is not None:
        return f"decimal({column.get('precision')},{column.get('scale', 0)})"
    if data_type == "timestamp" and column.get("timezone") is False:
        return "timestamp (no time zone)"
    return data_type


def _cell(value: Any) -> str:
    return str(value if value not in (None, "") else "-").replace("|", "\\|")


def write_xlsx(
    path: Path, jobs: Iterable[JobConfig], runs: Mapping[str, Mapping[str, str]]
) -> None:

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "jobs"
    sheet.append(list(CATALOG_COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for job in jobs:
        run = runs.get(job.job_id) or {}
        rows = run.get("rows_loaded")
        sheet.append(
            [
                safe_cell(value)
                for value in (
                    job.job_id,
                    job.source_type,
                    job.source_name,
                    ".".join(p for p in (job.schema_name, job.table_name) if p),
                    job.load_type,
                    job.schedule,
                    job.owner or "",
                    "ENABLED" if job.enabled else "DISABLED",
                    run.get("status") or "never run",
                    int(str(rows)) if str(rows or "").isdigit() else None,
                    run.get("finished_at") or "",
                )
            ]
        )
    sheet.freeze_panes = "A2"
    for column in sheet.columns:
        width = max(len(str(c.value or "")) for c in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 60)
    workbook.save(path)


def dictionary_markdown(
    jobs: Iterable[JobConfig],
    dest: Destination,
    runs: Mapping[str, Mapping[str, str]],
    per_day: Mapping[str, int],
    generated_at: dt.datetime,
    command: str = "dlt-ingest",
) -> str:
    fs = dest.filesystem()
    lines = [
        "# Data dictionary",
        "",
        f"Generated {generated_at:%Y-%m-%d %H:%M} UTC by `{command} catalog` from the job "
        "configuration, the dlt schemas stored in the lake and the audit. Do not edit by hand.",
        "",
        f"Lake: `{dest.display_url}`",
        "",
    ]
    for job in jobs:
        table = table_schema(
            stored_schema(dest, job.source_name, job.schema_name_in_lake, fs), job.lake_table
        )
        arrow = parquet_types(dest, job, fs) if table else {}
        run = runs.get(job.job_id) or {}
        source_table = ".".join(p for p in (job.schema_name, job.table_name) if p)
        load = str(job.load_type)
        if job.is_incremental:
            load += f" on `{job.watermark_column}`"
            if job.initial_watermark:
                load += f" (from {job.initial_watermark})"
        elif job.is_cdc:
            load += " (PostgreSQL logical replication, ordered by `_lsn`)"
        lines += [
            f"## {job.source_name}.{job.lake_table}",
            "",
            f"- Job: `{job.job_id}` ({'enabled' if job.enabled else 'disabled'}, "
            f"schedule {job.schedule})",
            f"- Source: {job.source_type} `{job.source_name}`, table `{source_table}`",
            f"- Lake path: `{_layout(job)}`",
            f"- Load type: {load}",
            f"- Primary key: {key_in_use(job, table)}",
            f"- Schema policy: {job.schema_policy}",
            f"- Owner: {job.owner or '-'}",
            f"- Typical rows per day: {per_day[job.job_id]:,} ({_per_day_meaning(job)})"
            if job.job_id in per_day
            else "- Typical rows per day: - (no successful load in the audit)",
            f"- Last run: {run.get('status') or 'never run'}"
            + (f", {run.get('rows_loaded')} rows, {run.get('finished_at')}" if run else ""),
        ]
        if job.notes:
            lines.append(f"- Notes: {job.notes}")
        lines.append("")
        if not table:
            lines += ["No schema in the lake yet (the job has not loaded).", ""]
            continue
        lines += [
            "| column | lake type (dlt) | Parquet type | nullable |",
            "|---|---|---|---|",
        ]
        for name, column in (table.get("columns") or {}).items():
            lines.append(
                f"| {_cell(name)} | {_cell(_type_text(column))} | {_cell(arrow.get(name))} | "
                f"{'yes' if column.get('nullable', True) else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


def _per_day_meaning(job: JobConfig) -> str:
    if job.keeps_versions:
        return "median over days of the rows that day's loads landed"
    return "median over days of the rows of that day's latest snapshot"


def write_catalog(
    config_path: str,
    destination: str,
    out_dir: str | Path,
    now: dt.datetime | None = None,
    command: str = "dlt-ingest",
) -> list[Path]:
    """Write both files into `out_dir`; returns their paths. `command`: how the user ran the
    catalog (`dlt-ingest` or `python -m ingest`), named in the dictionary's header."""
    config = load_config(config_path)
    dest = Destination.from_url(destination)
    audit = read_all_audit(dest)
    runs = last_runs(audit)
    per_day = typical_rows_per_day(audit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xlsx = out / CATALOG_FILE
    write_xlsx(xlsx, config.jobs, runs)
    markdown = out / DICTIONARY_FILE
    markdown.write_text(
        dictionary_markdown(
            config.jobs, dest, runs, per_day, now or dt.datetime.now(dt.UTC), command
        ),
        encoding="utf-8",
    )
    return [xlsx, markdown]
