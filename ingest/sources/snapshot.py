"""FULL loads are snapshots, also when the table is empty.

A FULL job that reads no rows must still commit a load that readers see as "the latest
snapshot is empty", so a table that became empty does not keep showing its last rows. dlt
writes an empty Parquet file (with the table's schema) for an empty Arrow table, but its SQL
readers yield nothing at all for an empty result. `EmptySnapshot` closes that gap for both
read paths: with `empty_snapshot` in the backend arguments, a read that yielded no rows yields
one empty Arrow table with the schema dlt derives from the reflected columns (the schema the
fast path casts to).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlt.common.configuration.container import Container
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.libs.pyarrow import columns_to_arrow
from dlt.sources.sql_database.helpers import TableLoader

#: backend argument that switches the behaviour on (FULL jobs)
EMPTY_SNAPSHOT = "empty_snapshot"


def hinted_schema(columns: dict[str, Any]) -> Any:
    """The Arrow schema of the reflected columns that carry a dlt data type, in UTC."""

    caps = (
        Container().get(DestinationCapabilitiesContext)
        or DestinationCapabilitiesContext.generic_capabilities()
    )
    typed = {name: c for name, c in columns.items() if c.get("data_type")}
    return columns_to_arrow(typed, caps, "UTC")


class EmptySnapshot:
    """Mixin for dlt table loaders (see module doc); put it before the loader class."""

    columns: dict[str, Any]

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        options = dict(backend_kwargs or {})
        wanted = bool(options.pop(EMPTY_SNAPSHOT, False))
        rows = 0
        for item in super().load_rows(options):  # type: ignore[misc]
            rows += int(getattr(item, "num_rows", 0) or 0)
            yield item
        if wanted and rows == 0:
            yield hinted_schema(self.columns).empty_table()


class SnapshotTableLoader(EmptySnapshot, TableLoader):
    """dlt's SQLAlchemy table loader (pyarrow backend) with empty snapshots."""
