"""Views over the lake: which files form each table, in a form every query engine reads.

A reader of the raw Parquet files must know dlt's bookkeeping to get a right answer: only
loads with a completion marker (`_dlt_loads/`) count, a FULL table is its newest snapshot (not
the sum of all of them), and the columns are those of the stored dlt schema (older files lack
the columns added later). This package encodes those rules once:

- `definition`: the dialect-neutral definition of one view (columns with types, the files of
  each completed load with the columns each file holds);
- `inventory`: builds definitions from the lake: completed-load markers, the stored dlt
  schemas, and a small per-table manifest that remembers the files of loads already seen (so a
  refresh lists one date folder per new load, never the whole lake);
- `dialects`: renders a definition as DuckDB, Synapse serverless, Databricks or Spark SQL;
- `refresh`: writes `metadata/views/<dialect>/<source>__<table>.sql` for every job (after each
  run, and by `python -m ingest views`);
- `duck`: DuckDB over a local or Azure lake with those views (`python -m ingest query`).
"""

from __future__ import annotations

#: every dialect the views are written in
DIALECTS = ("duckdb", "synapse", "databricks", "spark")
