"""The lake's path grammar, in one place: how every path of the lake is built and parsed.

    <root>/<source_name>/<table>/<YYYY>/<MM>/<DD>/<load_id>.<file_id>.parquet   a load's data
    <root>/<source_name>/<table>/<YYYY>/<MM>/<DD>/<load_id>.base<NNNN>.parquet  a compacted base
    <root>/<source_name>/<table>/_delta_log/                                    a Delta table
    <root>/<source_name>/_chunks/<table>/<load_id>.<chunk><file_id>.parquet     a split load's
        chunk's files, staged (no reader lists them) until the split load's commit moves them
    <root>/<source_name>/_dlt_loads/<schema>__<load_id>.jsonl                   completion marker
    <root>/<source_name>/_dlt_version/<schema>__<time>__<hash>.jsonl            stored dlt schema
    <root>/<source_name>/_dlt_pipeline_state/<pipeline>__<load_id>__<hash>.jsonl  dlt state
    <root>/metadata/audit_<YYYYMMDD>.csv                                        the audit
    <root>/metadata/views/ (and views/_loads/), metadata/reports/               views, reports

A load id is a unix time with a fraction (`1764288000.7654321`): its UTC date names the date
folder. `Destination.path` joins the parts under the lake's root; the views' SQL reads the load
id and date back from a file's path with `LOAD_ID_PATTERN` / `DATE_FOLDER_PATTERN`.
Everything else (views, reports, the job, the audit) asks this module, never re-derives a path.
"""

from __future__ import annotations

import datetime as dt
import re

#: dlt's filesystem layout of a table's data files (the destination's `layout`)
LAYOUT = "{table_name}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.{ext}"
#: a chunk of a split load (`ingest.job.split`): its files' ids start with the chunk's prefix,
#: and they are staged outside the table's folder (no reader lists or globs them there); only
#: the split load's commit moves the landed ones into the load's date folder
STAGING_DIR = "_chunks"
CHUNK_LAYOUT = STAGING_DIR + "/{table_name}/{load_id}.{chunk}{file_id}.{ext}"
DATA_EXTENSION = "parquet"
#: folders of a source's dataset that dlt writes beside its tables
LOADS_DIR = "_dlt_loads"
STATE_DIR = "_dlt_pipeline_state"
VERSION_DIR = "_dlt_version"
#: a Delta table's own log (in the table's folder)
DELTA_LOG = "_delta_log"
#: between a schema (or pipeline) name and a load id or time in dlt's file names
SEPARATOR = "__"
MARKER_EXTENSION = ".jsonl"
#: the lake's own metadata: the audit, views, reports
METADATA_DIR = "metadata"
VIEWS_DIR = f"{METADATA_DIR}/views"
MANIFEST_DIR = f"{VIEWS_DIR}/_loads"
REPORTS_DIR = f"{METADATA_DIR}/reports"
#: the function app's run store (`ingest.app.runstore`)
RUNS_DIR = f"{METADATA_DIR}/runs"
#: a lake table's lease (`<dataset>__<table>.lease` blob, `.lock` file) and, on a local lake,
#: its commit log beside the lock (`.commits.json`); the audit's lock files too
LEASE_DIR = f"{METADATA_DIR}/leases"
LEASE_BLOB_SUFFIX, LOCK_FILE_SUFFIX, COMMIT_LOG_SUFFIX = ".lease", ".lock", ".commits.json"

#: regular expressions over a data file's path (the views' SQL): its load id, its date folder
LOAD_ID_PATTERN = r"([^/]+)\.[^./]+\.parquet$"
DATE_FOLDER_PATTERN = r"([0-9]{4}/[0-9]{2}/[0-9]{2})/[^/]+$"
DATE_FOLDER_FORMAT = "%Y/%m/%d"
_AUDIT_NAME = re.compile(r"audit_(\d{8})\.csv$")


def lease_name(dataset: str, table: str) -> str:
    """The lease of a lake table: every writer of `<dataset>/<table>` takes this one."""
    return f"{dataset}{SEPARATOR}{table}"


def date_folder(load_id: str) -> str:
    """`YYYY/MM/DD`: the UTC date of a load id (a unix time), the folder its files are in."""
    return dt.datetime.fromtimestamp(float(load_id), dt.UTC).strftime(DATE_FOLDER_FORMAT)


def load_day(load_id: str) -> dt.date:
    """The UTC date of a load id."""
    return dt.datetime.fromtimestamp(float(load_id), dt.UTC).date()


def table_pattern(source_name: str, table: str) -> str:
    """Where a table's files are, as a readable pattern (the catalog shows it)."""
    return f"{source_name}/{table}/" + LAYOUT.split("/", 1)[1].replace("{ext}", DATA_EXTENSION)


def base_file_name(load_id: str, number: int) -> str:
    """A compacted base's data file (`<load_id>.base<NNNN>.parquet`)."""
    return f"{load_id}.base{number:04d}.{DATA_EXTENSION}"


def is_base_file(path: str) -> bool:
    """Whether `path` is named as a compacted base's data file (`base_file_name`)."""
    parts = path.rsplit("/", 1)[-1].split(".")
    return len(parts) == 4 and parts[2].startswith("base") and parts[-1] == DATA_EXTENSION


def is_load_file(path: str) -> bool:
    """Whether `path` is named as a load's data file (`<load_id>.<file_id>.parquet`, the load
    id a unix time): the clean-up removes nothing else (a file a person put there stays)."""
    parts = path.rsplit("/", 1)[-1].split(".")
    if len(parts) != 4 or parts[-1] != DATA_EXTENSION:
        return False
    return parts[0].isdigit() and parts[1].isdigit()


def staging_folder(table: str) -> str:
    """Where the chunks of a split load of `table` stage their files, under the dataset."""
    return f"{STAGING_DIR}/{table}"


def is_data_file(path: str) -> bool:
    return path.endswith("." + DATA_EXTENSION)


def load_id_of(path: str) -> str:
    """`.../<load_id>.<file_id>.parquet` -> load_id (load ids contain a dot themselves)."""
    return path.rsplit("/", 1)[-1].rsplit(".", 2)[0]


def marker_name(schema: str, load_id: str) -> str:
    """A completion marker's file name in `_dlt_loads/`."""
    return f"{schema}{SEPARATOR}{load_id}{MARKER_EXTENSION}"


def parse_marker_name(name: str) -> tuple[str, str] | None:
    """`<schema>__<load_id>.jsonl` -> (schema, load id); None for another file. Split from the
    right: schema names hold "__" themselves."""
    if not name.endswith(MARKER_EXTENSION):
        return None
    schema, _, load_id = name[: -len(MARKER_EXTENSION)].rpartition(SEPARATOR)
    return (schema, load_id) if schema else None


def parse_state_name(name: str) -> tuple[str, str] | None:
    """`<pipeline>__<load_id>__<hash>.jsonl` (a dlt state file) -> (pipeline, load id); None
    for another file. Split from the right as dlt does."""
    parts = name.rsplit(".", 1)[0].rsplit(SEPARATOR, 2)
    return (parts[0], parts[1]) if len(parts) == 3 else None


def parse_version_name(name: str) -> tuple[str, float] | None:
    """`<schema>__<time>__<hash>.jsonl` (a stored dlt schema) -> (schema, time); None for
    another file. Split from the right as dlt does (names hold "__")."""
    if not name.endswith(MARKER_EXTENSION):
        return None
    parts = name[: -len(MARKER_EXTENSION)].rsplit(SEPARATOR, 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], float(parts[1])
    except ValueError:
        return None


def audit_file_name(day: dt.date) -> str:
    """The audit file of a UTC day, in `metadata/`."""
    return f"audit_{day:%Y%m%d}.csv"


def audit_file_day(name: str) -> dt.date | None:
    """The day of an audit file's name; None for another file."""
    match = _AUDIT_NAME.search(name)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None
