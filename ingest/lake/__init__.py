"""The lake: where it is, what is in it, and how its writers stay out of each other's way.

    dest = Destination.from_url("abfss://raw@account.dfs.core.windows.net")
    done = completed_load_ids(dest, "erp", schema_name, table="orders")   # committed loads

Modules: `url` (every lake URL form, one parser), `destination` (dlt's destination, fsspec and
blob clients for a lake), `loads` (completed loads, their files, clean-up of dead loads),
`lease` (one writer per job, and the fenced write of its table's commit log), `commits` (the
commit log: which loads are committed, load ids in commit order), `ledger` (which tasks
already loaded, committed with the load), `atomic` (atomic updates of small files such as
the audit). Engine-only, import directly: `delta` (Delta tables, needs the `delta` extra),
`parquet_writer` (dlt's Parquet writer with the dictionary policy).
"""

from ingest.lake.atomic import update_text
from ingest.lake.commits import CommitLog
from ingest.lake.destination import Destination
from ingest.lake.layout import LAYOUT, lease_name, load_id_of
from ingest.lake.lease import Holder, JobLease, LeaseBusy, LeaseLost, lease_for
from ingest.lake.loads import (
    completed_load_ids,
    count_rows,
    ensure_dataset,
    remove_incomplete_loads,
    table_files,
)
from ingest.lake.url import LakeUrl, parse_lake_url

__all__ = [
    "LAYOUT",
    "CommitLog",
    "Destination",
    "Holder",
    "JobLease",
    "LakeUrl",
    "LeaseBusy",
    "LeaseLost",
    "completed_load_ids",
    "count_rows",
    "ensure_dataset",
    "lease_for",
    "lease_name",
    "load_id_of",
    "parse_lake_url",
    "remove_incomplete_loads",
    "table_files",
    "update_text",
]
