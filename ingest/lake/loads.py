"""What is in the lake for one job: completed loads, their files, and leftovers to clean.

dlt's filesystem destination writes a load's data files first, then the pipeline state file
(`_dlt_pipeline_state/<pipeline>__<load_id>__<hash>.jsonl`) and last the completion marker
(`_dlt_loads/<schema>__<load_id>.jsonl`). A load that died halfway leaves data files (and
possibly a state file) without a marker. `remove_incomplete_loads` deletes those before the
job runs again, so readers never see half a load and the restored watermark never points past
data that did not land.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ingest.lake.atomic import replace_file
from ingest.lake.commits import CommitLog, committed
from ingest.lake.destination import Destination
from ingest.lake.layout import (
    DELTA_LOG,
    LOADS_DIR,
    SEPARATOR,
    STATE_DIR,
    date_folder,
    is_data_file,
    is_load_file,
    load_id_of,
    marker_name,
    parse_marker_name,
    parse_state_name,
    staging_folder,
)
from ingest.lake.lease import JobLease, read_commit_log

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    data_files_removed: int
    state_files_removed: int
    load_ids: tuple[str, ...]


def names_with_prefix(dest: Destination, folder: str, prefix: str) -> list[str]:
    """Names of the files in `folder` that start with `prefix`.

    Only those are listed, on every lake: these folders hold a file per load of every job of
    the source (a year of nightly runs of 200 tables: 73,000 completion markers), and a job
    needs its own. Blob storage filters by name server-side, one request per 5,000 of the
    job's files (the blob SDK's listing, without the existence probe adlfs sends before each
    listing); a local folder is scanned once, without a stat per file."""
    if dest.protocol == "file":
        try:
            with os.scandir(folder) as entries:
                return [e.name for e in entries if e.name.startswith(prefix) and e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []
    start = f"{folder.split('/', 1)[1]}/{prefix}" if "/" in folder else prefix
    blobs = dest.container_client().list_blobs(name_starts_with=start)
    return [blob.name.rsplit("/", 1)[-1] for blob in blobs]


def completed_load_ids(
    dest: Destination, dataset: str, schema_name: str, fs: Any = None, *, table: str
) -> set[str]:
    """Load ids of `schema_name` (one per job pipeline) of the lake table `<dataset>/<table>`
    that are committed: a completion marker, and the table's commit log lists them
    (`ingest.lake.commits`)."""
    return committed_by_schema(dest, dataset, table, (schema_name,), fs)[schema_name]


def committed_by_schema(
    dest: Destination,
    dataset: str,
    table: str,
    schema_names: tuple[str, ...],
    fs: Any = None,
    log: CommitLog | None | object = ...,
) -> dict[str, set[str]]:
    """Committed load ids of each of `schema_names` (the schemas whose loads write `table`)."""
    marked = _completed_by_schema(dest, dataset, schema_names, fs)
    if log is ...:
        log = read_commit_log(dest, dataset, table)
    assert log is None or isinstance(log, CommitLog)
    return {schema: committed(ids, log) for schema, ids in marked.items()}


def _completed_by_schema(
    dest: Destination, dataset: str, schema_names: tuple[str, ...], fs: Any = None
) -> dict[str, set[str]]:
    """Completed load ids of each of `schema_names`, from one listing of the markers that
    start with the names' common prefix (a job's and its backfill's share most of theirs)."""
    fs = fs or dest.filesystem()
    done: dict[str, set[str]] = {name: set() for name in schema_names}
    prefix = os.path.commonprefix(list(schema_names))
    for name in names_with_prefix(dest, dest.path(dataset, LOADS_DIR), prefix):
        parsed = parse_marker_name(name)
        if parsed and parsed[0] in done:
            done[parsed[0]].add(parsed[1])
    return done


def is_delta_table(dest: Destination, dataset: str, table: str, fs: Any = None) -> bool:
    """Whether `<dataset>/<table>` is a Delta table (its own log hides uncommitted files)."""
    fs = fs or dest.filesystem()
    return bool(fs.exists(dest.path(dataset, table, DELTA_LOG)))


def table_files(dest: Destination, dataset: str, table: str, fs: Any = None) -> list[str]:
    """Every data file under `<dataset>/<table>/` (all dates), as fsspec paths."""
    return [p for p in _table_listing(dest, dataset, table, fs) if is_data_file(p)]


def _table_listing(dest: Destination, dataset: str, table: str, fs: Any = None) -> list[str]:
    """Every file under `<dataset>/<table>/` (data files, a Delta log), as fsspec paths."""
    fs = fs or dest.filesystem()
    root = dest.path(dataset, table)
    try:
        return sorted(fs.find(root))
    except FileNotFoundError:
        return []


def load_files(
    dest: Destination, dataset: str, table: str, load_id: str, fs: Any = None
) -> list[str]:
    """The data files of one load of `<dataset>/<table>` (its date folder, one listing)."""
    fs = fs or dest.filesystem()
    folder = dest.path(dataset, table, date_folder(load_id))
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    return sorted(p for p in names if is_data_file(p) and load_id_of(p) == load_id)


def staged_files(
    dest: Destination, dataset: str, table: str, load_id: str | None = None, fs: Any = None
) -> list[str]:
    """The data files chunks of split loads of `<dataset>/<table>` staged (of one load when
    `load_id` is given; `ingest.job.split`): invisible to every reader."""
    fs = fs or dest.filesystem()
    try:
        names = fs.ls(dest.path(dataset, staging_folder(table)), detail=False)
    except FileNotFoundError:
        return []
    return sorted(p for p in names if is_data_file(p) and load_id in (None, load_id_of(p)))


def move_into_load(dest: Destination, path: str, fs: Any = None) -> str:
    """Move a staged chunk file into its load's date folder of its table (the split load's
    commit, under the job's lease); returns the new path. A local rename; on blob storage a
    server-side copy (waited for) and a delete of the staged blob."""
    fs = fs or dest.filesystem()
    staging, name = path.rsplit("/", 1)
    table = staging.rsplit("/", 1)[-1]
    dataset_path = staging.rsplit("/", 2)[0]
    target = f"{dataset_path}/{table}/{date_folder(load_id_of(name))}/{name}"
    if dest.protocol == "file":
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(path, target)
        return target
    container = dest.container_client()
    source = container.get_blob_client(path.split("/", 1)[1])
    copy = container.get_blob_client(target.split("/", 1)[1])
    status = copy.start_copy_from_url(source.url).get("copy_status")
    deadline = time.monotonic() + COPY_WAIT_S
    while status == "pending":  # a copy inside one account rarely is; wait for it
        if time.monotonic() > deadline:
            raise TimeoutError(f"copy of {path} to {target} still pending after {COPY_WAIT_S} s")
        time.sleep(0.2)
        status = copy.get_blob_properties().copy.status
    if status != "success":
        raise OSError(f"copy of {path} to {target} ended {status}")
    source.delete_blob()
    return target


#: how long the commit of a split load waits for one server-side copy of a staged file
COPY_WAIT_S = 600.0


def remove_incomplete_loads(
    dest: Destination,
    dataset: str,
    table: str,
    pipeline_name: str,
    schema_name: str,
    other_schema_names: tuple[str, ...],
    lease: JobLease,
    log: CommitLog | None = None,
) -> tuple[CleanupReport, CommitLog]:
    """Under the job's lease: delete what loads that never committed left behind, and return
    the table's commit log as the next commit continues it.

    - data files of loads that are not committed (a crash, a killed worker, a writer that
      lost its lease before its commit) and state files of this pipeline's such loads;
    - completion markers the commit log does not list (a stalled writer that committed, lost
      its lease and wrote its marker after the next holder cleaned up);
    - commits of the log whose load never got its marker (a crash between the commit and the
      marker: the load's files are removed, so the log must not list it).

    `other_schema_names`: schemas whose committed loads also write this table (the job's
    backfill pipeline). `log`: the log as the caller just read it under the lease (None: read
    it here). The files of the log's pending split load (`ingest.job.split`) stay: its chunks
    are still landing. Delta tables keep their data files: the Delta log already hides what
    was never committed. A table without a commit log (a lake written before it existed) gets
    one whose floor is its newest marked load: every marked load so far counts as committed."""
    fs = dest.filesystem()
    schemas = (schema_name, *other_schema_names)
    marked = _completed_by_schema(dest, dataset, schemas, fs)
    all_marked = set().union(*marked.values())
    if log is None:
        log = lease.read_log()
    if log is None:
        floor = max(all_marked, key=float) if all_marked else None
        log = CommitLog(floor=floor)
    unmarked = [c.load_id for c in log.commits if c.load_id not in marked.get(c.schema, set())]
    if unmarked:
        log = log.without(unmarked)
        lease.write_log(log)
    done = {schema: committed(ids, log) for schema, ids in marked.items()}
    table_done = set().union(*done.values())
    if log.pending is not None:  # landing, not dead
        table_done.add(log.pending.load_id)
    stray_markers = [
        dest.path(dataset, LOADS_DIR, marker_name(schema, load_id))
        for schema, ids in marked.items()
        for load_id in sorted(ids - done[schema])
    ]
    orphans = []
    listing = _table_listing(dest, dataset, table, fs)
    if not any(f"/{DELTA_LOG}/" in p for p in listing):
        orphans = [p for p in listing if is_load_file(p) and load_id_of(p) not in table_done]
    # chunks' staged files of split loads that are not pending (committed, abandoned: a late
    # or dead attempt's), never read by anyone
    pending_id = log.pending.load_id if log.pending is not None else None
    orphans += [p for p in staged_files(dest, dataset, table, fs=fs) if load_id_of(p) != pending_id]
    state_orphans = []
    state_folder = dest.path(dataset, STATE_DIR)
    for name in names_with_prefix(dest, state_folder, pipeline_name + SEPARATOR):
        parsed = parse_state_name(name)
        if parsed and parsed[0] == pipeline_name and parsed[1] not in done[schema_name]:
            state_orphans.append(f"{state_folder}/{name}")
    load_ids = sorted({load_id_of(p) for p in orphans} | set(unmarked), key=float)
    if orphans or state_orphans or stray_markers or unmarked:
        _log.warning(
            "removing %d data file(s), %d state file(s) and %d completion marker(s) of "
            "load(s) that never committed (%s) of %s/%s",
            len(orphans),
            len(state_orphans),
            len(stray_markers),
            ", ".join(load_ids) or "-",
            dataset,
            table,
        )
        for path in orphans + state_orphans + stray_markers:
            fs.rm(path)
    report = CleanupReport(len(orphans), len(state_orphans), tuple(load_ids))
    return report, log


def ensure_dataset(dest: Destination, dataset: str) -> None:
    """Create the source's folder and dlt's `init` marker before any of its jobs runs.

    dlt creates them check-then-create, so two jobs of one source starting together on a new
    lake race (one fails with FileExistsError). Here creation is idempotent and the marker is
    written atomically (rename on local disks; a blob upload is atomic by itself).
    """

    # dlt: only when a dataset is created (the audit and history use this module without it)
    from dlt.destinations.impl.filesystem.filesystem import CURRENT_VERSION, INIT_FILE_NAME

    fs = dest.filesystem()
    folder = dest.path(dataset)
    marker = f"{folder}/{INIT_FILE_NAME}"
    if fs.exists(marker):
        return
    fs.makedirs(folder, exist_ok=True)
    content = json.dumps({"initial_version": CURRENT_VERSION, "current_version": CURRENT_VERSION})
    if dest.protocol == "file":
        replace_file(marker, content)
    else:
        fs.write_text(marker, content, encoding="utf-8")


def count_rows(dest: Destination, paths: list[str], fs: Any = None) -> int:
    """Rows in Parquet files, from their footers (no data read)."""
    # pyarrow: only when rows are counted (see above)
    import pyarrow.parquet as pq

    fs = fs or dest.filesystem()
    total = 0
    for path in paths:
        with fs.open(path, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
