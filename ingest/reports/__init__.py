"""What the lake and the audit tell people, generated, never hand-maintained.

Modules: `history` (recent runs per table and a failure summary, from the audit CSVs),
`catalog` (`PRODUCTION_JOBS_CATALOG.xlsx` and `DATA_DICTIONARY.md` from the config, the stored
dlt schemas and the audit; imports pyarrow and openpyxl, so it is imported directly), and the
HTML run report: `run_report` (what it shows, from the audit), `charts` (its SVG charts,
matplotlib), `report_html` (the page), `report_files` (`metadata/reports/` in the lake: written
after every run, read by `GET /api/runs/{id}/report`); imported directly too.
"""

from ingest.reports.history import failure_summary, recent, run_results, run_summaries

__all__ = ["failure_summary", "recent", "run_results", "run_summaries"]
