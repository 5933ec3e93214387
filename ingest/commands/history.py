"""`history`: recent runs per table and a failure summary, read from the audit CSVs."""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace
from typing import Any

from ingest.commands.output import show_table
from ingest.settings import Settings

ERROR_WIDTH = 100


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.lake.destination import Destination
    from ingest.reports.history import failure_summary, recent, run_summaries

    return SimpleNamespace(
        Destination=Destination,
        failure_summary=failure_summary,
        recent=recent,
        run_summaries=run_summaries,
    )


def register(subparsers: Any) -> None:
    history = subparsers.add_parser(
        "history",
        help="recent runs per table and a failure summary (from the audit)",
        description="Read the audit CSVs (<lake>/metadata/audit_YYYYMMDD.csv) of the last N "
        "days and print each table's recent loads (status, rows, duration, watermark), then "
        "the jobs that failed with their last error.",
    )
    history.add_argument(
        "--destination", help="lake root: file://PATH, az://CONTAINER or abfss://..."
    )
    history.add_argument(
        "--job", action="append", default=[], metavar="ID", help="only this job (repeatable)"
    )
    history.add_argument(
        "--days", type=int, default=7, metavar="N", help="days of audit to read (default 7)"
    )
    history.add_argument("--json", action="store_true", help="print rows and summaries as JSON")
    history.set_defaults(func=cmd_history)


def _short(text: str, width: int = ERROR_WIDTH) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _rows_table(rows: list[dict[str, str]]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    ordered = sorted(
        rows,
        key=lambda r: (r.get("job_id", ""), r.get("started_at", "")),
    )
    # per table: newest load first
    ordered.sort(key=lambda r: r.get("started_at", ""), reverse=True)
    ordered.sort(key=lambda r: r.get("job_id", ""))
    return (
        (
            "job",
            "source",
            "table",
            "started (UTC)",
            "run",
            "status",
            "rows",
            "seconds",
            "watermark",
        ),
        [
            (
                r.get("job_id", ""),
                r.get("source_name", ""),
                r.get("table_name", ""),
                (r.get("started_at") or "").replace("+00:00", ""),
                r.get("run_id", ""),
                r.get("status", ""),
                f"{int(float(r.get('rows_loaded') or 0)):,}",
                f"{float(r.get('duration_s') or 0):.1f}",
                r.get("watermark_after") or "",
            )
            for r in ordered
        ],
    )


def _failures_table(
    failures: list[dict[str, Any]],
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    return (
        ("job", "source", "table", "failed", "runs", "now", "last failure (UTC)", "last error"),
        [
            (
                f["job_id"],
                f["source_name"],
                f["table_name"],
                f["failures"],
                f["runs"],
                f["latest_status"],
                (f["last_failed_at"] or "").replace("+00:00", ""),
                _short(f["last_error"]),
            )
            for f in failures
        ],
    )


def cmd_history(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    destination = args.destination or settings.destination
    rows = engine.recent(destination, args.days, args.job or None)
    failures = engine.failure_summary(rows)
    runs = engine.run_summaries(rows)
    if args.json:
        sys.stdout.write(
            json.dumps({"runs": runs, "rows": rows, "failures": failures}, indent=2) + "\n"
        )
        return 0
    scope = f" for job(s) {', '.join(args.job)}" if args.job else ""
    if not rows:
        where = engine.Destination.from_url(destination).display_url  # ./lake: which folder it was
        sys.stdout.write(
            f"no audit rows{scope} in the last {args.days} day(s) under {where} "
            "(another lake: --destination URL or INGEST_DESTINATION)\n"
        )
        return 0
    write = sys.stdout.write
    write(f"Runs in the last {args.days} day(s){scope}:\n")
    show_table(
        ("run", "started (UTC)", "jobs", "ok", "failed", "skipped", "rows"),
        [
            (
                r["run_id"],
                (r["started_at"] or "").replace("+00:00", ""),
                r["jobs"],
                r["succeeded"],
                r["failed"],
                r["skipped"],
                f"{r['rows_loaded']:,}",
            )
            for r in runs
        ],
        sys.stdout,
    )
    write("\nLoads per table (newest first):\n")
    show_table(*_rows_table(rows), sys.stdout)
    write("\n")
    if failures:
        write("Failures:\n")
        show_table(*_failures_table(failures), sys.stdout)
    else:
        write("Failures: none\n")
    return 0
