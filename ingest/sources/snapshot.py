"""dlt's table loaders, driven by the job's type plan (`ingest.sources.typemap`).

`PlannedRead` is the part both read paths share: the SELECT list is the plan's (each column
as the plan reads it: as is, or cast to text in SQL), and a FULL load's empty read still
yields one empty Arrow table with the plan's schema. `SnapshotTableLoader` is dlt's pyarrow
backend path: the driver's rows of each batch go through the plan's converters
(`TablePlan.from_rows`), not dlt's own conversion (which infers structs from JSON objects, cuts
TIME durations to a day and turns VARBINARY(n) into fixed-size binary).

Empty snapshots: a FULL job that reads no rows must still commit a load that readers see as
"the latest snapshot is empty", so a table that became empty does not keep showing its last
rows. dlt writes an empty Parquet file (with the table's schema) for an empty Arrow table, but
its SQL readers yield nothing at all for an empty result; with `empty_snapshot` in the backend
arguments, a read that yielded no rows yields one empty table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlt.sources.sql_database.helpers import TableLoader

from ingest.sources.typemap import TablePlan

#: backend argument that switches empty snapshots on (FULL jobs)
EMPTY_SNAPSHOT = "empty_snapshot"
#: backend argument carrying the job's TablePlan to the loader
TYPE_PLAN = "type_plan"


class PlannedRead:
    """Mixin for dlt table loaders (see module doc); put it before the loader class."""

    plan: TablePlan
    table: Any

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        options = dict(backend_kwargs or {})
        self.plan = options.pop(TYPE_PLAN)
        wanted = bool(options.pop(EMPTY_SNAPSHOT, False))
        rows = 0
        for item in super().load_rows(options):  # type: ignore[misc]
            rows += int(getattr(item, "num_rows", 0) or 0)
            yield item
        if wanted and rows == 0:
            yield self.plan.schema.empty_table()

    def make_query(self) -> Any:
        return self.plan.select(super().make_query(), self.table)  # type: ignore[misc]


class SnapshotTableLoader(PlannedRead, TableLoader):
    """dlt's SQLAlchemy table loader (pyarrow backend): planned SELECT, planned conversion."""

    engine: Any
    chunk_size: int

    def _load_rows(self, query: Any, backend_kwargs: dict[str, Any]) -> Iterator[Any]:
        with self.engine.connect() as connection, self.plan.open_session(connection):
            result = connection.execution_options(yield_per=self.chunk_size).execute(query)
            try:
                for partition in result.partitions(size=self.chunk_size):
                    yield self.plan.from_rows([row._data for row in partition])
            finally:
                result.close()
