"""Which files form each table: completed loads, their files, their columns.

Sources of truth, all in the lake:
- completion markers `<source>/_dlt_loads/<schema>__<load_id>.jsonl` (one listing per source
  answers every job of it; a job's loads are its own pipeline's and its backfill pipeline's),
  counted only when the table's commit log lists them (`ingest.lake.commits`);
- the stored dlt schemas `<source>/_dlt_version/<schema>__<time>__<hash>.jsonl` (the newest
  one of the job's schema holds the view's columns and types);
- the data files of each completed load. dlt names the date folder after the load package's
  creation time, which is the load id (a unix timestamp) in UTC, so a new load's files are
  found by listing one folder, `<table>/<YYYY>/<MM>/<DD>/`, and reading their Parquet footers
  (for the columns each file holds). Loads seen before come from the table's manifest
  (`metadata/views/_loads/<source>__<table>.json`): a refresh never lists the whole lake.
  A load whose files are not in its date folder is looked for once in the table folder
  (logged), and a completed load without a file of this table is an empty load.

Delta tables (`table_format = delta`) are what their Delta log says: the current version's
files (read with `deltalake`); the newest write's files are a FULL table's latest snapshot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.config import JobConfig
from ingest.identifiers import lake_name
from ingest.lake.commits import committed
from ingest.lake.delta import open_table
from ingest.lake.destination import Destination
from ingest.lake.layout import (
    LOADS_DIR,
    MANIFEST_DIR,
    VERSION_DIR,
    is_data_file,
    load_id_of,
    parse_marker_name,
    parse_version_name,
)
from ingest.lake.lease import read_commit_log
from ingest.lake.loads import is_delta_table, table_files
from ingest.views.definition import (
    CURRENT,
    DELETED,
    HISTORY,
    STATE,
    UNION,
    VERSIONS,
    Column,
    Part,
    ViewDef,
    columns_of,
    latest,
    load_date,
)
from ingest.vocabulary import LSN, TableFormat

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
HISTORY_SUFFIX = "_history"


def _names(fs: Any, folder: str) -> list[str]:
    try:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------------------------------
# one listing per source


@dataclass
class SourceListing:
    """Completion markers and stored schema versions of one source (dataset), by schema."""

    markers: dict[str, set[str]] = field(default_factory=dict)
    #: schema name -> file names of its stored versions, newest last
    versions: dict[str, list[str]] = field(default_factory=dict)

    def completed(self, schemas: Iterable[str]) -> set[str]:
        done: set[str] = set()
        for schema in schemas:
            done |= self.markers.get(schema, set())
        return done


def list_source(dest: Destination, dataset: str, fs: Any) -> SourceListing:
    listing = SourceListing()
    for name in _names(fs, dest.path(dataset, LOADS_DIR)):
        if parsed := parse_marker_name(name):
            listing.markers.setdefault(parsed[0], set()).add(parsed[1])
    stamped: dict[str, list[tuple[float, str]]] = {}
    for name in _names(fs, dest.path(dataset, VERSION_DIR)):
        if version := parse_version_name(name):
            stamped.setdefault(version[0], []).append((version[1], name))
    listing.versions = {schema: [n for _, n in sorted(v)] for schema, v in stamped.items()}
    return listing


def read_stored_table(
    dest: Destination, dataset: str, version_file: str, table: str, fs: Any
) -> Mapping[str, Any] | None:
    with fs.open(dest.path(dataset, VERSION_DIR, version_file), "r", encoding="utf-8") as handle:
        info = json.loads(handle.read())
    schema = info.get("schema")
    schema = json.loads(schema) if isinstance(schema, str) else schema
    return ((schema or {}).get("tables") or {}).get(table)


# ------------------------------------------------------------------------------------------
# the manifest: what a refresh learned about a table, so the next one need not look again


@dataclass
class Manifest:
    #: load id -> [(file relative to the lake root, index into column_sets)]
    loads: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    column_sets: list[list[str]] = field(default_factory=list)
    #: Delta tables: file (relative to the lake root) -> index into column_sets
    delta_files: dict[str, int] = field(default_factory=dict)
    #: the stored schema versions the columns were read from, and the columns
    schema_versions: list[str] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    #: fingerprint of the view files last written into the lake
    written: str = ""

    def column_set(self, index: int) -> frozenset[str]:
        return frozenset(self.column_sets[index])

    def index_of(self, columns: Iterable[str]) -> int:
        wanted = sorted(columns)
        for index, known in enumerate(self.column_sets):
            if known == wanted:
                return index
        self.column_sets.append(wanted)
        return len(self.column_sets) - 1

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "column_sets": self.column_sets,
                "loads": {k: [list(f) for f in v] for k, v in sorted(self.loads.items())},
                "delta_files": dict(sorted(self.delta_files.items())),
                "schema_versions": self.schema_versions,
                "columns": self.columns,
                "written": self.written,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            return cls()
        return cls(
            loads={k: [(str(f), int(i)) for f, i in v] for k, v in data.get("loads", {}).items()},
            column_sets=[list(c) for c in data.get("column_sets", [])],
            delta_files={str(k): int(v) for k, v in data.get("delta_files", {}).items()},
            schema_versions=list(data.get("schema_versions", [])),
            columns=list(data.get("columns", [])),
            written=str(data.get("written") or ""),
        )


def manifest_path(dest: Destination, job: JobConfig) -> str:
    return dest.path(MANIFEST_DIR, f"{job.source_name}__{job.lake_table}.json")


def read_manifest(dest: Destination, job: JobConfig, fs: Any) -> Manifest:
    try:
        with fs.open(manifest_path(dest, job), "r", encoding="utf-8") as handle:
            return Manifest.from_json(handle.read())
    except FileNotFoundError:
        return Manifest()
    except (ValueError, KeyError, TypeError) as exc:  # unreadable cache: rebuild it
        log.warning("views: manifest of %s unreadable (%s); rebuilding it", job.job_id, exc)
        return Manifest()


# ------------------------------------------------------------------------------------------
# files and their columns


def _relative(dest: Destination, path: str) -> str:
    root = dest.path().rstrip("/") + "/"
    path = path.split("://", 1)[-1] if "://" in path and dest.protocol != "file" else path
    return path[len(root) :] if path.startswith(root) else path


def file_columns(dest: Destination, relative: str, fs: Any) -> list[str]:
    """Column names a Parquet file holds, from its footer."""

    with fs.open(dest.path(relative), "rb") as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def find_load_files(
    dest: Destination, dataset: str, table: str, load_ids: Iterable[str], fs: Any
) -> dict[str, list[str]]:
    """load id -> its data files of `table` (relative to the lake root): one listing of the
    date folder per new load's day; the table folder only for loads not found there."""
    wanted = sorted(set(load_ids), key=float)
    found: dict[str, list[str]] = {load_id: [] for load_id in wanted}
    days: dict[str, list[str]] = {}
    for load_id in wanted:
        days.setdefault(load_date(load_id).replace("-", "/"), []).append(load_id)
    for day in days:
        folder = f"{dataset}/{table}/{day}"
        for name in _names(fs, dest.path(folder)):
            if is_data_file(name) and load_id_of(name) in found:
                found[load_id_of(name)].append(f"{folder}/{name}")
    missing = [load_id for load_id, files in found.items() if not files]
    if missing:
        elsewhere = 0
        for path in table_files(dest, dataset, table, fs):
            load_id = load_id_of(path)
            if load_id in missing:
                found[load_id].append(_relative(dest, path))
                elsewhere += 1
        if elsewhere:
            log.warning(
                "views: %d file(s) of %s/%s are not in their load's date folder (UTC date of "
                "the load id); found them by listing the table folder",
                elsewhere,
                dataset,
                table,
            )
    return {load_id: sorted(files) for load_id, files in found.items()}


# ------------------------------------------------------------------------------------------
# the definitions of one job


@dataclass
class JobViews:
    job: JobConfig
    views: list[ViewDef]
    manifest: Manifest
    #: completed loads the views were built from (the refresh re-checks them after writing)
    completed: frozenset[str]
    #: why the job has no view (not loaded yet), or ""
    skipped: str = ""


def job_schemas(job: JobConfig) -> tuple[str, ...]:
    """dlt schemas whose loads write the job's table: its pipeline's, its backfills' and its
    compacted bases' (`ingest.job.compaction`)."""
    return (job.schema_name_in_lake, job.backfill_schema_name_in_lake, job.base_schema_name_in_lake)


def job_loads_by_schema(dest: Destination, job: JobConfig, fs: Any) -> dict[str, set[str]]:
    """The job's committed loads, by schema (its pipeline, backfills, bases)."""
    listing = list_source(dest, job.source_name, fs)
    log = read_commit_log(dest, job.source_name, job.lake_table)
    return {s: committed(listing.markers.get(s, set()), log) for s in job_schemas(job)}


def job_loads(dest: Destination, job: JobConfig, listing: SourceListing) -> frozenset[str]:
    """The job's committed loads: a completion marker and its table's commit log lists it
    (`ingest.lake.commits`)."""
    log = read_commit_log(dest, job.source_name, job.lake_table)
    return frozenset(committed(listing.completed(job_schemas(job)), log))


def _stored_columns(
    dest: Destination,
    job: JobConfig,
    listing: SourceListing,
    manifest: Manifest,
    fs: Any,
) -> tuple[Column, ...] | None:
    """The view's columns: the newest stored schema of the job (columns only the backfill
    schema knows are added after them). None: nothing stored yet."""
    newest = [listing.versions[s][-1] for s in job_schemas(job) if listing.versions.get(s)]
    if not newest:
        return None
    if newest != manifest.schema_versions or not manifest.columns:
        columns: dict[str, Column] = {}
        for version in newest:
            table = read_stored_table(dest, job.source_name, version, job.lake_table, fs)
            for column in columns_of(table):
                columns.setdefault(column.name, column)
        manifest.schema_versions = newest
        manifest.columns = [vars(c) for c in columns.values()]
    return tuple(Column(**c) for c in manifest.columns)


def _parts(manifest: Manifest, load_ids: Iterable[str]) -> list[Part]:
    parts: list[Part] = []
    for load_id in sorted(load_ids, key=float):
        files = manifest.loads.get(load_id) or []
        by_set: dict[int, list[str]] = {}
        for path, index in files:
            by_set.setdefault(index, []).append(path)
        for index, paths in sorted(by_set.items()):
            parts.append(
                Part(load_id, tuple(sorted(paths)), manifest.column_set(index), len(by_set) == 1)
            )
    return parts


def build_job_views(
    dest: Destination,
    job: JobConfig,
    listing: SourceListing,
    fs: Any,
    *,
    history_allowed: bool = True,
) -> JobViews:
    manifest = read_manifest(dest, job, fs)
    completed = job_loads(dest, job, listing)
    columns = _stored_columns(dest, job, listing, manifest, fs)
    if columns is None or not completed:
        return JobViews(job, [], manifest, completed, "not loaded yet (no completed load)")
    if not columns:
        return JobViews(job, [], manifest, completed, f"no table {job.lake_table} in its schema")
    if job.table_format == TableFormat.DELTA:
        if is_delta_table(dest, job.source_name, job.lake_table, fs):
            delta_views = _delta_views(dest, job, manifest, columns, completed, fs)
            return JobViews(job, delta_views, manifest, completed)
    # forget loads whose marker is gone, learn the new ones
    manifest.loads = {k: v for k, v in manifest.loads.items() if k in completed}
    new = [load_id for load_id in completed if load_id not in manifest.loads]
    if new:
        found = find_load_files(dest, job.source_name, job.lake_table, new, fs)
        for load_id, files in found.items():
            manifest.loads[load_id] = [
                (path, manifest.index_of(file_columns(dest, path, fs))) for path in files
            ]
    base: dict[str, Any] = dict(dataset=job.source_name, table=job.lake_table, job_id=job.job_id)
    base.update(load_type=job.load_type, columns=columns)
    keys = table_keys(job, columns)
    if job.keeps_versions and keys:
        bases = completed & listing.markers.get(job.base_schema_name_in_lake, set())
        newest_base = latest(bases)
        current = [
            i
            for i in completed
            if newest_base is None
            or i == newest_base
            or (i not in bases and float(i) > float(newest_base))
        ]
        versions = [i for i in completed if i not in bases]
        keyed: dict[str, Any] = dict(keys=keys, order_by=_order_column(job, columns))
        views: list[ViewDef] = [
            ViewDef(
                name=job.lake_table,
                kind=STATE,
                **base,
                **keyed,
                parts=tuple(_parts(manifest, current)),
                loads=tuple(sorted(current, key=float)),
                base_load=newest_base,
            )
        ]
        if history_allowed:
            views.append(
                ViewDef(
                    name=job.lake_table + HISTORY_SUFFIX,
                    kind=VERSIONS,
                    **base,
                    **keyed,
                    parts=tuple(_parts(manifest, versions)),
                    loads=tuple(sorted(versions, key=float)),
                )
            )
        else:
            views[0] = _with_note(
                views[0],
                f"no {job.lake_table}{HISTORY_SUFFIX} view: a configured table has that name",
            )
    elif job.keeps_versions:
        views = [
            ViewDef(
                name=job.lake_table,
                kind=UNION,
                **base,
                parts=tuple(_parts(manifest, completed)),
                loads=tuple(sorted(completed, key=float)),
            )
        ]
    else:
        newest = latest(completed)
        snapshot = ViewDef(
            name=job.lake_table,
            kind=CURRENT,
            **base,
            parts=tuple(_parts(manifest, [newest] if newest else [])),
            loads=(newest,) if newest else (),
        )
        views = [snapshot]
        if history_allowed:
            views.append(
                ViewDef(
                    name=job.lake_table + HISTORY_SUFFIX,
                    kind=HISTORY,
                    **base,
                    parts=tuple(_parts(manifest, completed)),
                    loads=tuple(sorted(completed, key=float)),
                )
            )
        else:
            views[0] = _with_note(
                snapshot,
                f"no {job.lake_table}{HISTORY_SUFFIX} view: a configured table has that name",
            )
    return JobViews(job, views, manifest, completed)


def table_keys(job: JobConfig, columns: tuple[Column, ...]) -> tuple[str, ...]:
    """The key of the job's table in the lake: the configured primary_key, else the table's own
    (dlt's `primary_key` hints in the stored schema); () for a table without one."""
    names = {c.name for c in columns}
    if job.primary_key:
        keys = tuple(lake_name(k) for k in job.primary_key)
        return keys if all(k in names for k in keys) else ()
    return tuple(c.name for c in columns if c.primary_key)


def _order_column(job: JobConfig, columns: tuple[Column, ...]) -> str | None:
    """What orders the versions of a key: the watermark; a CDC job's commit LSN (`_lsn`)."""
    if job.is_cdc:
        name = LSN
    elif not job.watermark_column:
        return None
    else:
        name = lake_name(job.watermark_column)
    return name if any(c.name == name for c in columns) else None


def _with_note(view: ViewDef, note: str) -> ViewDef:

    return replace(view, notes=(*view.notes, note))


def _delta_views(
    dest: Destination,
    job: JobConfig,
    manifest: Manifest,
    columns: tuple[Column, ...],
    completed: frozenset[str],
    fs: Any,
) -> list[ViewDef]:
    """INCREMENTAL: the Delta table's current version (Delta readers; DuckDB gets the current
    files): with a key, the table is merged by key, so it is the current state (its delete
    markers removed their keys; no `_deleted` column is shown). FULL: the files the newest
    write added (the latest snapshot)."""

    dataset, table = job.source_name, job.lake_table
    columns = tuple(c for c in columns if c.name != DELETED)
    folder = f"{dataset}/{table}"
    delta = open_table(dest, dataset, table)
    current = sorted(f"{folder}/{f}" for f in _delta_files(delta))
    manifest.loads = {}
    manifest.delta_files = {
        path: manifest.delta_files[path]
        if path in manifest.delta_files
        else manifest.index_of(file_columns(dest, path, fs))
        for path in current
    }
    base: dict[str, Any] = dict(
        dataset=dataset, table=table, job_id=job.job_id, load_type=job.load_type
    )
    base.update(columns=columns, loads=tuple(sorted(completed, key=float)), named_by_load=False)
    if job.is_incremental:
        return [
            ViewDef(
                name=table,
                kind=UNION,
                **base,
                parts=_delta_parts(manifest, current, None),
                delta_folder=folder,
                notes=(
                    "Delta table: the Delta log decides what is committed; its files carry "
                    "no load id, so _load_id and _load_date are NULL",
                ),
            )
        ]
    history = delta.history()
    writes = [h for h in history if h.get("operation") in ("WRITE", "CREATE TABLE")]
    newest = max(writes, key=lambda h: int(h.get("version", 0))) if writes else None
    version = int(newest.get("version", 0)) if newest else int(delta.version())
    if version > 0:
        delta.load_as_version(version - 1)
        before = {f"{folder}/{f}" for f in _delta_files(delta)}
    else:
        before = set()
    delta.load_as_version(version)
    added = sorted({f"{folder}/{f}" for f in _delta_files(delta)} - before)
    gone = [f for f in added if f not in manifest.delta_files]
    if gone:
        raise ValueError(
            f"the newest snapshot of Delta table {folder} (version {version}) was rewritten "
            "after it was written (OPTIMIZE or a later commit removed its files): its latest "
            "snapshot cannot be told apart; read it with Delta time travel"
        )
    stamp = float(newest.get("timestamp", 0)) / 1000 if newest else 0.0
    load_id = latest(i for i in completed if float(i) <= stamp) if stamp else latest(completed)
    parts = _delta_parts(manifest, added, load_id)
    return [
        ViewDef(
            name=table,
            kind=CURRENT,
            **{**base, "loads": (load_id,) if load_id else ()},
            parts=parts,
            notes=(
                f"Delta table: the latest snapshot is the files Delta version {version} added; "
                "earlier snapshots: Delta time travel (no history view)",
            ),
        )
    ]


def _delta_files(delta: Any) -> list[str]:
    """Data files of the loaded Delta version, relative to the table folder."""

    return [str(p) for p in pa.chunked_array(delta.get_add_actions().column("path")).to_pylist()]


def _delta_parts(manifest: Manifest, files: Iterable[str], load_id: str | None) -> tuple[Part, ...]:
    by_set: dict[int, list[str]] = {}
    for path in files:
        by_set.setdefault(manifest.delta_files[path], []).append(path)
    return tuple(
        Part(load_id, tuple(sorted(paths)), manifest.column_set(index), len(by_set) == 1)
        for index, paths in sorted(by_set.items())
    )
