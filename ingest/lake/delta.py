"""Delta tables in the lake (`table_format = delta`): where they are and how to read them.

dlt's filesystem destination writes a job with `table_format="delta"` as a Delta table at
`<lake>/<source_name>/<table_name>/` (data files + `_delta_log/`), appending one commit per
run; this module opens it with the `deltalake` package (delta-rs) for the framework's own
reads (catalog, tests). Any Delta reader (Spark, Databricks, DuckDB, Polars) can read it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest.lake.destination import Destination
from ingest.lake.loads import is_delta_table


def table_uri(dest: Destination, dataset: str, table: str) -> tuple[str, dict[str, str]]:
    """(uri, storage_options) for delta-rs."""
    if dest.protocol == "file":
        return dest.path(dataset, table), {}
    return f"{dest.bucket_url.rstrip('/')}/{dataset}/{table}", dest.delta_storage_options()


def open_table(dest: Destination, dataset: str, table: str) -> Any:
    # deltalake: the optional `delta` extra (ingest.runtime.optional checks it first)
    from deltalake import DeltaTable

    uri, options = table_uri(dest, dataset, table)
    return DeltaTable(uri, storage_options=options or None)


def read_table(dest: Destination, dataset: str, table: str) -> Any:
    """The Delta table's current version as one pyarrow Table."""
    return open_table(dest, dataset, table).to_pyarrow_table()


def delta_schema(dest: Destination, dataset: str, table: str) -> Any:
    """The Delta table's schema as a pyarrow schema (None when it cannot be opened)."""

    try:
        schema = open_table(dest, dataset, table).schema()
    except Exception:
        return None
    return pa.schema(schema.to_arrow()) if hasattr(schema, "to_arrow") else schema


def current_version(dest: Destination, dataset: str, table: str) -> int | None:
    """The Delta table's version, or None when there is no table yet."""
    if not is_delta_table(dest, dataset, table):
        return None
    return int(open_table(dest, dataset, table).version())


def count_equal(
    dest: Destination, dataset: str, table: str, column: str, value: Any, version: Any = "now"
) -> int:
    """Rows of the table (at `version`; None = before the table existed) with column == value."""

    if version is None:
        return 0
    table_ = open_table(dest, dataset, table)
    if version != "now":
        table_.load_as_version(int(version))
    data = table_.to_pyarrow_dataset().to_table(columns=[column]).column(column)
    return int(pc.sum(pc.equal(data, pa.scalar(value, type=data.type))).as_py() or 0)
