"""What the lake and the audit tell people, generated, never hand-maintained.

Modules: `history` (recent runs per table and a failure summary, from the audit CSVs),
`catalog` (`PRODUCTION_JOBS_CATALOG.xlsx` and `DATA_DICTIONARY.md` from the config, the stored
dlt schemas and the audit; imports pyarrow and openpyxl, so it is imported directly).
"""

from ingest.reports.history import failure_summary, recent, run_results, run_summaries

__all__ = ["failure_summary", "recent", "run_results", "run_summaries"]
