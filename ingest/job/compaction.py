"""Compaction: a keyed table's current state written as a new base, so its view stays fast.

An INCREMENTAL table with a key keeps every version it ever read; its current view takes the
newest version of each key (`ingest.views.dialects`, STATE). Night after night the versions pile
up and the view reads them all. Under the job's lease, compaction writes the current state
(one row per key, deleted keys gone) as a new **base**: a completed load of its own
(`<load_id>.base<NNNN>.parquet` files in the load's date folder, its completion marker under the
job's base schema `<source>_<table>_base`, committed in the table's commit log like any load).
The current view then reads the base and the loads after it; the history view reads every
load but the bases, so it keeps every version (until `INGEST_HISTORY_RETENTION_DAYS`).

- When: after a load, when the loads the view reads beyond one (its base, or before any base the
  first load) reach `INGEST_COMPACT_LOADS` (default 1: every run that landed something after
  the first, so the view reads one compacted base every morning), or their rows reach
  `INGEST_COMPACT_RATIO` times the base's; and on demand (`dlt-ingest compact`). A table of
  more than `INGEST_COMPACT_MAX_ROWS` rows (its base, or its first load; default 2,000,000:
  rewriting them takes about 4 s here) waits `INGEST_COMPACT_LOADS` x ceil(rows / that)
  loads instead, so a run pays on average at most about that many rows of rewriting: a
  10M-row table whose CDC run lands 1 % of it is compacted every 5th run, not every run
  (rewriting it takes longer than a FULL copy of it).
- Crash-safe: the base counts only once committed; a kill before leaves files that the job's
  next clean-up removes (they never committed), a kill after leaves a complete base.
- Idempotent: with no load since the last base there is nothing to compact.
- Bounded memory: DuckDB reads the state (`ingest.views.state`) within `INGEST_STATE_MEMORY_MB`,
  spilling to the working folder; the base is written batch by batch.
- Retention (`INGEST_HISTORY_RETENTION_DAYS`, 0: keep all): loads older than that and older
  than the newest base are removed after a compaction (files, markers, commits), except the
  job's newest load (its state holds the job's watermark). The history then starts later.

Delta tables are not compacted here: a keyed Delta table is merged by key on every load, so it is
its own current state (`ingest.checks.job_checks`).

It runs as a step of a job (`ingest.job.run`, after the job's load, under its lease) and as the
command `dlt-ingest compact` (`ingest.commands.compact`), which takes the job's lease itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.config import JobConfig
from ingest.lake.commits import CommitLog, next_load_id
from ingest.lake.destination import Destination
from ingest.lake.layout import LOADS_DIR, base_file_name, date_folder, marker_name
from ingest.lake.lease import JobLease
from ingest.lake.loads import load_files
from ingest.lake.parquet_writer import dictionary_for
from ingest.views.dialects import quote_double
from ingest.views.inventory import job_loads_by_schema
from ingest.views.state import TableState, current_state, state_connection
from ingest.vocabulary import DELETED, LOAD_DATE, LOAD_ID, DictionaryPolicy

log = logging.getLogger(__name__)

#: the task a base's commit records
COMPACT_TASK = "compact"
#: rows per batch read from DuckDB
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class Compaction:
    """What one compaction did (or why it did nothing)."""

    job_id: str
    load_id: str = ""
    rows: int = 0
    files: int = 0
    #: loads the new base replaces in the current view (the previous base and those after it)
    loads_folded: int = 0
    seconds: float = 0.0
    loads_removed: int = 0
    skipped: str = ""
    #: why it failed ("" when it did not)
    error: str = ""


@dataclass(frozen=True)
class Thresholds:
    loads: int
    ratio: float
    #: a table of more rows (its base, or its first load) waits `loads` x ceil(rows /
    #: max_rows) loads (0: no limit)
    max_rows: int = 0

    def loads_for(self, rows: int) -> int:
        """The loads a table of `rows` waits for: so many that a run pays on average at most
        about `max_rows` rows of rewriting."""
        if not self.max_rows or rows <= self.max_rows:
            return self.loads
        return self.loads * -(-rows // self.max_rows)


def due(dest: Destination, job: JobConfig, thresholds: Thresholds, fs: Any = None) -> str:
    """Why the table should be compacted now ("" when it should not)."""
    state = current_state(dest, job, fs)
    if state is None:
        return ""
    base = state.view.base_load
    since = [p for p in state.view.parts if p.load_id != base]
    # the loads the view ranks beyond one: its base's, or before any base the first load's
    # (a first load is a copy of the table: compacting it alone would write it twice)
    loads = len({p.load_id for p in since}) - (1 if base is None else 0)
    if loads >= thresholds.loads and not thresholds.max_rows:
        return f"{loads} load(s) to fold into the base (INGEST_COMPACT_LOADS={thresholds.loads})"
    if loads < thresholds.loads and (base is None or not thresholds.ratio):
        return ""
    fs = fs or dest.filesystem()
    base_rows = _rows(dest, [f for p in state.view.parts if p.load_id == base for f in p.files], fs)
    since_rows = _rows(dest, [f for p in since for f in p.files], fs)
    # a large table is compacted less often: the rewrite's cost spread over more runs. Its
    # size: the base's rows, or before any base the first load's (a copy of the table), not
    # the rows since, which would put it off further with every load
    size = base_rows
    if base is None and since:
        first = since[0].load_id
        size = _rows(dest, [f for p in since if p.load_id == first for f in p.files], fs)
    wanted = thresholds.loads_for(size)
    if loads >= wanted:
        scaled = (
            f", x{wanted // thresholds.loads} for a table of {size:,} rows "
            f"(INGEST_COMPACT_MAX_ROWS={thresholds.max_rows:,})"
            if wanted != thresholds.loads
            else ""
        )
        return (
            f"{loads} load(s) to fold into the base (INGEST_COMPACT_LOADS="
            f"{thresholds.loads}{scaled})"
        )
    if base is None or not thresholds.ratio:
        return ""
    if base_rows and since_rows >= thresholds.ratio * base_rows:
        return (
            f"{since_rows:,} row(s) since the last base of {base_rows:,} "
            f"(INGEST_COMPACT_RATIO={thresholds.ratio:g})"
        )
    return ""


def _rows(dest: Destination, relative: list[str], fs: Any) -> int:
    total = 0
    for path in relative:
        with fs.open(dest.path(path), "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def compact(
    dest: Destination,
    job: JobConfig,
    lease: JobLease,
    log_: CommitLog,
    *,
    run_id: str,
    workdir: Path,
    memory_mb: int,
    file_max_rows: int,
    retention_days: int = 0,
    dictionary: DictionaryPolicy = DictionaryPolicy.AUTO,
) -> tuple[Compaction, CommitLog]:
    """Write the table's current state as a new base and commit it (see module doc); returns
    what it did and the commit log as it is now. The caller holds the job's lease."""
    clock = time.monotonic()
    fs = dest.filesystem()
    state = current_state(dest, job, fs)
    if state is None:
        return Compaction(job.job_id, skipped="no current state (no key or no load)"), log_
    base = state.view.base_load
    folded = {p.load_id for p in state.view.parts}
    if base is not None and folded == {base}:
        return Compaction(job.job_id, skipped="nothing loaded since the last base"), log_
    load_id = next_load_id(repr(time.time()), log_.last_load_id)
    folder = dest.path(job.source_name, job.lake_table, date_folder(load_id))
    fs.makedirs(folder, exist_ok=True)
    shown = [c.name for c in state.columns if c.name not in (LOAD_ID, LOAD_DATE)]
    columns = ", ".join(f'"{name}"' for name in shown)
    connection = state_connection(dest, memory_mb, workdir / "spill")
    rows = files = 0
    try:
        if base is None:
            state = _first_load_as_base(dest, fs, connection, state)
        passes = _passes(dest, state, fs)
        writer: Any = None
        handle: Any = None
        in_file = 0
        schema = None
        for batch in _state_batches(connection, state.sql, columns, state.keys, passes):
            schema = schema or batch.schema
            if writer is None or in_file >= file_max_rows:
                if writer is not None:
                    writer.close()
                    handle.close()
                files += 1
                handle = fs.open(f"{folder}/{base_file_name(load_id, files)}", "wb")
                # dictionaries where they pay, as in the loads' files (INGEST_PARQUET_DICTIONARY)
                writer = pq.ParquetWriter(
                    handle,
                    schema,
                    compression="zstd",
                    use_dictionary=dictionary_for(dictionary, batch),
                )
                in_file = 0
            writer.write_table(pa.Table.from_batches([batch], schema=schema))
            in_file += batch.num_rows
            rows += batch.num_rows
        if writer is None:  # an empty state: an empty base that carries the columns
            files = 1
            empty_schema = (
                connection.execute(f"SELECT {columns} FROM ({state.sql}) AS s LIMIT 0")
                .fetch_arrow_table()
                .schema
            )
            with fs.open(f"{folder}/{base_file_name(load_id, 1)}", "wb") as empty:
                pq.write_table(empty_schema.empty_table(), empty, compression="zstd")
        else:
            writer.close()
            handle.close()
    finally:
        connection.close()
    # the commit: the log (fenced by the lease), then the base's completion marker
    log_ = log_.add(load_id, job.base_schema_name_in_lake, run_id, COMPACT_TASK)
    lease.write_log(log_)
    _write_marker(dest, fs, job, load_id)
    log_ = _drop_superseded_bases(dest, fs, job, lease, log_)
    removed = 0
    if retention_days:
        removed, log_ = _retire(dest, fs, job, lease, log_, load_id, retention_days)
    report = Compaction(
        job.job_id,
        load_id,
        rows,
        files,
        len(folded),
        round(time.monotonic() - clock, 3),
        removed,
    )
    log.info(
        "job %s: compacted %d load(s) into base %s: %s rows in %d file(s), %.1f s",
        job.job_id,
        report.loads_folded,
        load_id,
        f"{rows:,}",
        files,
        report.seconds,
    )
    return report, log_


def _first_load_as_base(
    dest: Destination, fs: Any, connection: Any, state: TableState
) -> TableState:
    """Before any base, the first load read as one when it is one: a row per key and no delete
    marker (a first load is a copy of the table; a read split by another column than the key
    may hold a key twice). Then only the keys the later loads touched are ranked, not every
    version: TPC-H lineitem's first compaction ranked 6M rows of two loads in several passes
    for minutes; with its first load as the base it reads the base once."""
    view = state.view
    first = min((p.load_id for p in view.parts if p.load_id), key=float)
    later = [f for p in view.parts if p.load_id != first for f in p.files]
    if _rows(dest, later, fs) > PASS_ROWS:
        # many versions since (a year of loads never compacted): the first load's anti-join
        # against them all ran out of 512 MB; they are ranked in passes with it instead
        return state
    alone = replace(view, parts=tuple(p for p in view.parts if p.load_id == first))
    keys = ", ".join(quote_double(k) for k in view.keys)
    body = state.renderer.body(alone)
    deleted = f" OR bool_or(COALESCE({quote_double(DELETED)}, false))" if view.has_deleted else ""
    twice = connection.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM ({body}) AS v GROUP BY {keys} "
        f"HAVING count(*) > 1{deleted}) AS t"
    ).fetchone()[0]
    if twice:
        log.info("compaction: the first load holds %d key(s) twice: every version ranked", twice)
        return state
    return state.with_view(replace(view, base_load=first))


#: versions ranked in one pass of a compaction (DuckDB's window does not spill: a table with
#: more versions to rank is written in several passes, each a share of its keys by hash)
PASS_ROWS = 2_000_000


def _passes(dest: Destination, state: TableState, fs: Any) -> int:
    """How many passes the compaction needs: the versions it ranks (every row of the loads
    after the base, and the base's rows when there is no base) over PASS_ROWS."""
    ranked = [p for p in state.view.parts if p.load_id != state.view.base_load]
    rows = _rows(dest, [f for p in ranked for f in p.files], fs)
    return max(1, -(-rows // PASS_ROWS))


def _state_batches(
    connection: Any, state_sql: str, columns: str, keys: tuple[str, ...], passes: int
) -> Any:
    """The state's rows, in `passes` shares of its keys (a hash of the key, so each key's
    versions are ranked together in one pass), each in key order: the base's row groups then
    hold ranges of the key, so a reader's filter on the key skips the others by their
    statistics (the year's table: a key lookup on an unsorted base took 1.7x the source's
    file, sorted it takes less)."""
    key = ", ".join(quote_double(k) for k in keys)
    for share in range(passes):
        where = f" WHERE hash({key}) % {passes} = {share}" if passes > 1 else ""
        reader = connection.execute(
            f"SELECT {columns} FROM ({state_sql}) AS s{where} ORDER BY {key}"
        ).fetch_record_batch(BATCH_ROWS)
        for batch in reader:
            if batch.num_rows:
                yield batch


def _write_marker(dest: Destination, fs: Any, job: JobConfig, load_id: str) -> None:
    """The base's completion marker, as dlt writes one (`_dlt_loads/<schema>__<load_id>`)."""
    schema = job.base_schema_name_in_lake
    marker = dest.path(job.source_name, LOADS_DIR, marker_name(schema, load_id))
    content = {
        "load_id": load_id,
        "schema_name": schema,
        "status": 0,
        "inserted_at": dt.datetime.now(dt.UTC).isoformat(),
        "schema_version_hash": "",
    }
    with fs.open(marker, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(content))


#: bases kept: the newest, and the one before it (views written before this compaction still
#: name its files, so a query running while it commits reads on)
BASES_KEPT = 2


def _drop_superseded_bases(
    dest: Destination, fs: Any, job: JobConfig, lease: JobLease, log_: CommitLog
) -> CommitLog:
    """Remove the bases older than the newest BASES_KEPT (files, markers, commits): no view
    reads them (the current view reads the newest base, the history none), and a table
    compacted every night would otherwise keep a copy of itself per night."""
    schema = job.base_schema_name_in_lake
    bases = sorted(job_loads_by_schema(dest, job, fs).get(schema, set()), key=float)
    old = [(schema, load_id) for load_id in bases[:-BASES_KEPT]]
    log_ = _remove_loads(dest, fs, job, lease, log_, old)
    if old:
        log.info("job %s: %d superseded base(s) removed", job.job_id, len(old))
    return log_


def _remove_loads(
    dest: Destination,
    fs: Any,
    job: JobConfig,
    lease: JobLease,
    log_: CommitLog,
    loads: list[tuple[str, str]],
) -> CommitLog:
    """Remove these loads (schema, load id) of the job's table: files, markers, commits."""
    for schema, load_id in loads:
        for path in load_files(dest, job.source_name, job.lake_table, load_id, fs):
            fs.rm(path)
        marker = dest.path(job.source_name, LOADS_DIR, marker_name(schema, load_id))
        if fs.exists(marker):
            fs.rm(marker)
    if loads:
        log_ = log_.without(load_id for _, load_id in loads)
        lease.write_log(log_)
    return log_


def _retire(
    dest: Destination,
    fs: Any,
    job: JobConfig,
    lease: JobLease,
    log_: CommitLog,
    base: str,
    days: int,
) -> tuple[int, CommitLog]:
    """Remove loads older than `days` and than the base `base` (not the job's newest load,
    whose state holds the watermark): files, marker, commit."""
    cutoff = time.time() - days * 86400
    by_schema = job_loads_by_schema(dest, job, fs)
    newest = max(by_schema.get(job.schema_name_in_lake, {"0"}), key=float)
    old = [
        (schema, load_id)
        for schema, loads in by_schema.items()
        for load_id in loads
        if float(load_id) < min(cutoff, float(base)) and load_id != newest
    ]
    log_ = _remove_loads(dest, fs, job, lease, log_, old)
    if old:
        log.info("job %s: %d load(s) older than %d day(s) removed", job.job_id, len(old), days)
    return len(old), log_
