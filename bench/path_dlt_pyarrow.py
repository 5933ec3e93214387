"""(b) dlt as shipped with its best exact backend: sql_table(backend="pyarrow") -> Parquet."""

import os
import sys

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.sql_database import sql_table  # noqa: E402

url, schema, table, lake, workdir = sys.argv[1:6]
resource = sql_table(
    credentials=url,
    table=table,
    schema=schema,
    backend="pyarrow",
    chunk_size=100_000,
    reflection_level="full_with_precision",
)
pipeline = dlt.pipeline(
    "bench_dlt_pyarrow",
    destination=dlt.destinations.filesystem(lake),
    dataset_name="bench",
    pipelines_dir=workdir,
)
info = pipeline.run(resource, loader_file_format="parquet")
print(pipeline.last_trace.last_normalize_info.row_counts.get(table, 0))
