"""Validating the job configuration: raw rows -> frozen `JobConfig`s, every problem at once.

`load_config(path)` reads the file once, validates every row and returns an `IngestConfig`. A
bad file raises one `ConfigError` listing every problem with its sheet, row and column;
nothing runs on a bad file. Whatever a file holds, reading it ends in an `IngestConfig` or a
`ConfigError`, never another exception; files past the limits of `ingest.limits` (size,
decompressed size, rows, columns, cell length) are refused before they are parsed in full, and
messages quote at most a short prefix of a bad value (`ingest.limits.quote`). Files written
for the framework's earlier local version (sheet `SourceConfig`, `last_watermark`,
`azure_sql`, `API`, ...) load unchanged.

Source types add their own configuration (the `api` sheet of REST jobs, and the jobs-sheet
columns they read) through `SourceTypes`, which the caller hands in (`ingest.configuration`
builds it from the source registry: this package never imports `ingest.sources`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ingest.config.extension import SourceTypes
from ingest.config.model import IngestConfig, JobConfig
from ingest.config.sheets import LimitExceeded, RawRow, pick_jobs_sheet, read_sheets
from ingest.durations import FORMS, parse_duration
from ingest.errors import ConfigError, Problem
from ingest.identifiers import is_job_id, is_source_name, is_sql_name, lake_name
from ingest.limits import MAX_REASON_CHARS, quote, shorten
from ingest.vocabulary import (
    CONFIG_LOAD_TYPES,
    WEEKDAYS,
    LoadType,
    SchemaPolicy,
    TableFormat,
)

#: characters of a table name pattern (`*`, `orders_%`): refused, `discover` lists the tables
WILDCARDS = ("*", "?", "%")
REQUIRED_COLUMNS = ("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
OPTIONAL_COLUMNS = (
    "schema_name",
    "watermark_column",
    "primary_key",
    "initial_watermark",
    "schedule",
    "owner",
    "notes",
    "schema_policy",
    "table_format",
    "chunk_size",
    "timeout",
    "delete_detection",
    "delete_detection_every",
    "lookback",
    "split",
    "split_column",
    "cdc_slot",
    "cdc_publication",
)
#: the most key ranges one table is read as (`split`)
MAX_SPLIT = 256
#: a replication slot's name (PostgreSQL's own rule), also used for publications
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
#: delete_detection values
DELETE_DETECTION = ("keys",)
#: free-text columns, where a tab or a line break is text (elsewhere, as everywhere, no other
#: control character: the catalog workbook, the data dictionary and the audit must hold it)
FREE_TEXT_COLUMNS = ("owner", "notes")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
_BREAKS = re.compile("[\t\n\r]")
#: Columns of the earlier local tool: name -> what we do with it.
LEGACY_RENAMES = {"last_watermark": "initial_watermark"}
LEGACY_IGNORED = {
    "target_container": "the lake root comes from INGEST_DESTINATION / --destination",
    "target_folder_path": "the lake layout is fixed: <source_name>/<table_name>/YYYY/MM/DD/",
    "query_filter": "free SQL from a spreadsheet is not executed; use a view in the source",
    "parallelism": "use --workers locally or INGEST_MAX_PARALLEL on Azure",
}


#: full English day names, accepted for the weekday of a WEEKLY schedule
DAY_NAMES = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def parse_schedule(text: str | None) -> str | None:
    """`DAILY` (also empty) or `WEEKLY:<MON..SUN>`; the day exactly as a three-letter
    abbreviation or a full name, any case (`WEEKLY:monday`); None for anything else
    (`WEEKLY:MONKEY` is not Monday)."""
    value = (text or "DAILY").strip().upper().replace(" ", "")
    if value == "DAILY":
        return value
    kind, _, day = value.partition(":")
    if kind != "WEEKLY":
        return None
    if day in WEEKDAYS:
        return f"WEEKLY:{day}"
    if day in DAY_NAMES:
        return f"WEEKLY:{WEEKDAYS[DAY_NAMES.index(day)]}"
    return None


class _RowChecker:
    """Turns one raw row into a JobConfig, collecting problems instead of raising."""

    def __init__(self, raw: RawRow, problems: list[Problem], source_types: SourceTypes):
        self.source_types = source_types
        self.raw = raw
        self.problems = problems

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(Problem(message, self.raw.sheet, self.raw.row, column))

    def text(self, column: str) -> str | None:
        return self.raw.values.get(column)

    def required(self, column: str) -> str | None:
        value = self.text(column)
        if value is None:
            self.problem(column, "a value is required")
        return value

    def sql_name(self, column: str, value: str | None) -> str | None:
        if value is not None and not is_sql_name(value):
            self.problem(
                column,
                f"{quote(value)} is not a plain SQL name (letters, digits, _ and $; "
                "starting with a letter or _)",
            )
            return None
        return value

    def choice(self, column: str, value: str | None, allowed: Iterable[str]) -> str | None:
        allowed = tuple(allowed)
        if value is not None and value not in allowed:
            self.problem(column, f"{quote(value)} is not one of: {', '.join(allowed)}")
            return None
        return value

    def cdc_names(
        self,
        load_type: str | None,
        source_type: str | None,
        watermark: str | None,
        table_format: str | None,
    ) -> tuple[str | None, str | None]:
        """CDC jobs: PostgreSQL only, no watermark (changes are ordered by their LSN), Parquet;
        the optional slot and publication names. Other jobs: no slot or publication."""
        names: dict[str, str | None] = {}
        for column in ("cdc_slot", "cdc_publication"):
            value = self.text(column)
            if value is not None:
                value = value.strip()
                if load_type not in (None, LoadType.CDC):
                    self.problem(column, "only CDC jobs read through a slot and a publication")
                    value = None
                elif not _SLOT_NAME.match(value):
                    self.problem(
                        column,
                        f"{quote(value)} must be 1 to 63 lowercase letters, digits or _ "
                        "(PostgreSQL's rule for slot names)",
                    )
                    value = None
            names[column] = value
        if load_type == LoadType.CDC:
            capturing = self.source_types.capturing_changes
            if source_type is not None and source_type not in capturing:
                self.problem(
                    "load_type",
                    f"CDC reads PostgreSQL's logical replication; a {source_type} job is FULL "
                    "or INCREMENTAL",
                )
            if watermark is not None or self.text("watermark_column") is not None:
                self.problem(
                    "watermark_column",
                    "a CDC job has no watermark: its changes are ordered by their commit LSN "
                    "(_lsn); leave watermark_column empty",
                )
            if table_format == TableFormat.DELTA:
                self.problem("table_format", "CDC jobs land Parquet (table_format = parquet)")
        return names["cdc_slot"], names["cdc_publication"]

    def control_characters(self) -> None:
        """No control character in any cell (see FREE_TEXT_COLUMNS)."""
        for column, value in self.raw.values.items():
            if not value:
                continue
            found = _CONTROL.search(value)
            if found is None and column not in FREE_TEXT_COLUMNS:
                found = _BREAKS.search(value)
            if found is not None:
                self.problem(
                    column,
                    f"holds the control character U+{ord(found.group()):04X} at position "
                    f"{found.start() + 1}; remove it (the catalog, the data dictionary and the "
                    "audit cannot hold it)",
                )

    def check(self) -> JobConfig | None:
        before = len(self.problems)
        self.control_characters()
        job_id = self.required("job_id")
        if job_id is not None and not is_job_id(job_id):
            self.problem("job_id", f"{quote(job_id)} must be letters, digits, '_', '.' or '-'")

        enabled_text = self.required("enabled")
        enabled = False
        if enabled_text is not None:
            flag = enabled_text.strip().upper()
            if flag in ("Y", "YES", "TRUE", "1"):
                enabled = True
            elif flag not in ("N", "NO", "FALSE", "0"):
                self.problem("enabled", f"{quote(enabled_text)} must be Y or N")

        source_type = self.required("source_type")
        if source_type is not None:
            source_type = source_type.strip().lower()
            source_type = self.source_types.aliases.get(source_type, source_type)
            source_type = self.choice("source_type", source_type, self.source_types.names)

        source_name = self.required("source_name")
        if source_name is not None and not is_source_name(source_name):
            self.problem(
                "source_name",
                f"{quote(source_name)} must be snake_case (lowercase letters, digits, _), "
                "e.g. postgres_erp",
            )

        table_name = self.required("table_name")
        if table_name is not None and any(mark in table_name for mark in WILDCARDS):
            self.problem(
                "table_name",
                f"{quote(table_name)} is a pattern; a job names one table. List the matching "
                "tables once with `dlt-ingest discover --source NAME --tables 'PATTERN' --out "
                "<this file>`: it appends one job row per table (with its key and a watermark "
                "where one exists) for you to review",
            )
            table_name = None
        table_name = self.sql_name("table_name", table_name)
        schema_name = self.sql_name("schema_name", self.text("schema_name"))

        load_type = self.required("load_type")
        if load_type is not None:
            load_type = self.choice("load_type", load_type.strip().upper(), CONFIG_LOAD_TYPES)

        watermark = self.sql_name("watermark_column", self.text("watermark_column"))
        if (
            load_type == LoadType.INCREMENTAL
            and watermark is None
            and self.text("watermark_column") is None
        ):
            self.problem("watermark_column", "INCREMENTAL needs a watermark_column")

        primary_key: list[str] = []
        for part in (self.text("primary_key") or "").split(","):
            part = part.strip()
            if part:
                if self.sql_name("primary_key", part) is not None:
                    primary_key.append(part)

        schedule = parse_schedule(self.text("schedule"))
        if schedule is None:
            self.problem(
                "schedule",
                f"{quote(self.text('schedule'))} must be DAILY or WEEKLY:<day>, the day as "
                "MON..SUN or its full name (WEEKLY:MONDAY)",
            )

        schema_policy = self.choice(
            "schema_policy",
            (self.text("schema_policy") or SchemaPolicy.EVOLVE).strip().lower(),
            SchemaPolicy,
        )
        table_format = self.choice(
            "table_format",
            (self.text("table_format") or TableFormat.PARQUET).strip().lower(),
            TableFormat,
        )

        chunk_size: int | None = None
        if (chunk_text := self.text("chunk_size")) is not None:
            try:
                chunk_size = int(chunk_text)
                if chunk_size < 100:
                    raise ValueError
            except ValueError:
                self.problem("chunk_size", f"{quote(chunk_text)} must be a whole number >= 100")

        timeout_s: float | None = None
        if (timeout_text := self.text("timeout")) is not None:
            timeout_s = parse_duration(timeout_text)
            if timeout_s is None or timeout_s < 1:
                self.problem("timeout", f"{quote(timeout_text)} must be {FORMS} (at least 1 s)")
                timeout_s = None

        delete_detection = (self.text("delete_detection") or "").strip().lower() or None
        if delete_detection is not None:
            delete_detection = self.choice("delete_detection", delete_detection, DELETE_DETECTION)
            if load_type not in (None, LoadType.INCREMENTAL):
                self.problem(
                    "delete_detection",
                    f"only INCREMENTAL jobs detect deletes (a {load_type} job lands the whole "
                    "table, deletes included)",
                )
        every: int | None = None
        if (every_text := self.text("delete_detection_every")) is not None:
            if not every_text.strip().isdigit() or int(every_text) < 1:
                self.problem(
                    "delete_detection_every", f"{quote(every_text)} must be a number of days >= 1"
                )
            elif delete_detection is None:
                self.problem("delete_detection_every", "needs delete_detection = keys")
            else:
                every = int(every_text)
        lookback = self.text("lookback")
        if lookback is not None:
            if parse_duration(lookback) is None:
                self.problem("lookback", f"{quote(lookback)} must be {FORMS}")
            elif load_type not in (None, LoadType.INCREMENTAL):
                self.problem("lookback", "only INCREMENTAL jobs re-read below their watermark")

        split: int | None = None
        if (split_text := self.text("split")) is not None:
            if not split_text.strip().isdigit() or not 2 <= int(split_text) <= MAX_SPLIT:
                self.problem(
                    "split",
                    f"{quote(split_text)} must be a number of key ranges from 2 to {MAX_SPLIT}",
                )
            elif source_type not in self.source_types.reading_tables:
                self.problem("split", "only SQL sources are read as key ranges")
            elif table_format == TableFormat.DELTA:
                self.problem("split", "a Delta table is written in one load; leave split empty")
            else:
                split = int(split_text)
        split_column = self.sql_name("split_column", self.text("split_column"))
        cdc_slot, cdc_publication = self.cdc_names(load_type, source_type, watermark, table_format)

        if len(self.problems) > before:
            return None
        assert job_id and source_type and source_name and table_name and load_type
        return JobConfig(
            job_id=job_id,
            enabled=enabled,
            source_type=source_type,
            source_name=source_name,
            table_name=table_name,
            load_type=LoadType(load_type),
            schema_name=schema_name,
            watermark_column=watermark,
            primary_key=tuple(primary_key),
            initial_watermark=self.text("initial_watermark"),
            schedule=schedule or "DAILY",
            owner=self.text("owner"),
            notes=self.text("notes"),
            schema_policy=SchemaPolicy(schema_policy or SchemaPolicy.EVOLVE),
            table_format=TableFormat(table_format or TableFormat.PARQUET),
            chunk_size=chunk_size,
            timeout_s=timeout_s,
            delete_detection=delete_detection,
            delete_detection_every=every,
            lookback=lookback.strip() if lookback else None,
            split=split,
            split_column=split_column,
            cdc_slot=cdc_slot,
            cdc_publication=cdc_publication,
            origin=f"sheet {self.raw.sheet!r} row {self.raw.row}",
        )


def _check_columns(
    sheet: str,
    headers: list[str],
    problems: list[Problem],
    warnings: list[str],
    source_types: SourceTypes,
) -> None:
    present = set(headers)
    for column in REQUIRED_COLUMNS:
        if column not in present:
            problems.append(Problem("required column is missing", sheet, 1, column))
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(LEGACY_RENAMES)
    for extension in source_types.extensions:
        known |= set(extension.columns)
    seen: set[str] = set()
    for column in headers:
        if column in seen:
            problems.append(Problem("column appears twice", sheet, 1, column))
        seen.add(column)
        if column in LEGACY_IGNORED:
            warnings.append(
                f"sheet {quote(sheet)} column {quote(column)} is ignored: {LEGACY_IGNORED[column]}"
            )
        elif column not in known:
            warnings.append(
                f"sheet {quote(sheet)} column {quote(column)} is not a known column; ignored"
            )


def _apply_renames(rows: list[RawRow]) -> list[RawRow]:
    out = []
    for raw in rows:
        values = dict(raw.values)
        for old, new in LEGACY_RENAMES.items():
            if old in values and values.get(new) is None:
                values[new] = values.pop(old)
        out.append(RawRow(raw.sheet, raw.row, values))
    return out


def _check_across_rows(rows: list[RawRow], problems: list[Problem]) -> None:
    """Duplicate job ids and jobs landing in the same lake folder, over every row (also rows
    with other problems, so one pass reports everything)."""
    first_row_of_id: dict[str, int] = {}
    first_row_of_folder: dict[tuple[str, str], tuple[int, str]] = {}
    for raw in rows:
        job_id = raw.values.get("job_id")
        if job_id is not None:
            if job_id in first_row_of_id:
                problems.append(
                    Problem(
                        f"duplicate job_id {quote(job_id)} (first used in row "
                        f"{first_row_of_id[job_id]})",
                        raw.sheet,
                        raw.row,
                        "job_id",
                    )
                )
            else:
                first_row_of_id[job_id] = raw.row
        source, table = raw.values.get("source_name"), raw.values.get("table_name")
        if not source or not table or not is_sql_name(table):
            continue
        folder = (source, lake_name(table))
        if folder in first_row_of_folder:
            other_row, other_id = first_row_of_folder[folder]
            problems.append(
                Problem(
                    f"job {quote(job_id)} would land in the same lake folder "
                    f"{source}/{folder[1]}/ as job {quote(other_id)} (row {other_row}); "
                    "use a different source_name for one of them",
                    raw.sheet,
                    raw.row,
                    "table_name",
                )
            )
        else:
            first_row_of_folder[folder] = (raw.row, job_id or "?")


def parse_rows(
    sheet: str,
    headers: list[str],
    rows: list[RawRow],
    origin: str,
    source_types: SourceTypes,
    sheets: Mapping[str, tuple[list[str], list[RawRow]]] | None = None,
) -> IngestConfig:
    """Validate header + rows of a jobs table; raise ConfigError with every problem.

    `sheets`: the workbook's other sheets (the `api` sheet of REST jobs is read from them)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    headers = [LEGACY_RENAMES.get(h, h) for h in headers]
    _check_columns(sheet, headers, problems, warnings, source_types)
    if problems:  # without the required columns every row would repeat the same complaint
        raise ConfigError(origin, problems)
    rows = _apply_renames(rows)
    checked = [
        job for raw in rows if (job := _RowChecker(raw, problems, source_types).check()) is not None
    ]
    _check_across_rows(rows, problems)
    _check_cdc_names(sheet, checked, problems)
    for extension in source_types.extensions:  # e.g. each rest_api job's `api` sheet row
        checked = extension.apply(origin, sheets or {}, rows, checked, problems, warnings)
    if problems:
        problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        raise ConfigError(origin, problems)
    if not checked:
        raise ConfigError(origin, [Problem("no jobs are configured", sheet)])
    for job in checked:
        reads_table = job.source_type in source_types.reading_tables
        if job.is_incremental and not job.primary_key and reads_table:
            warnings.append(
                f"job {job.job_id} ({job.origin}): INCREMENTAL without a primary_key: unless "
                f"table {job.table_name} has a primary key of its own, its view is the log of "
                "every version read (an updated row shows up once per load that read it) and "
                "deletes are never seen; declare primary_key for a current state"
            )
    return IngestConfig(origin, tuple(checked), tuple(warnings))


def _check_cdc_names(sheet: str, jobs: list[JobConfig], problems: list[Problem]) -> None:
    """Two CDC jobs of one source never share a slot or a publication: a slot has one reader,
    and its confirmed position is one job's."""
    seen: dict[tuple[str, str, str], JobConfig] = {}
    for job in jobs:
        if not job.is_cdc:
            continue
        for column in ("cdc_slot", "cdc_publication"):
            name = getattr(job, column)
            if name is None:
                continue
            other = seen.setdefault((job.source_name, column, name), job)
            if other is not job:
                problems.append(
                    Problem(
                        f"{quote(name)} is also the {column} of job {other.job_id} "
                        f"({other.origin}); each CDC job needs its own",
                        sheet,
                        _row_of(job),
                        column,
                    )
                )


def _row_of(job: JobConfig) -> int | None:
    tail = job.origin.rsplit(" row ", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def load_config(path: str | Path, source_types: SourceTypes) -> IngestConfig:
    """Read and validate a job configuration file (.xlsx or .csv) naming `source_types`."""
    path = Path(path)
    if not path.exists():
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        raise ConfigError(
            str(path),
            [
                Problem(
                    f"file not found{where}; pass --config PATH or set INGEST_CONFIG_PATH "
                    "(a relative path is read from the current folder)"
                )
            ],
        )
    if path.suffix.lower() not in (".xlsx", ".xlsm", ".csv"):
        raise ConfigError(str(path), [Problem("expected an .xlsx workbook or a .csv file")])
    try:
        sheets = read_sheets(path)
    except LimitExceeded as exc:
        raise ConfigError(str(path), exc.problems) from None
    except Exception as exc:  # openpyxl raises many types for corrupt files
        reason = shorten(str(exc) or type(exc).__name__, MAX_REASON_CHARS)
        raise ConfigError(str(path), [Problem(f"cannot read the file: {reason}")]) from None
    sheet = pick_jobs_sheet(sheets)
    if sheet is None:
        raise ConfigError(str(path), [Problem("the workbook has no sheets")])
    headers, rows = sheets[sheet]
    return parse_rows(sheet, headers, rows, str(path), source_types, sheets)
