"""`report --html`: the run report as one self-contained HTML file, from the audit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ingest.errors import RequestError
from ingest.settings import Settings

DEFAULT_OUT = "ingestion_report.html"
DEFAULT_DAYS = 30
MAX_DAYS = 366


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.lake.destination import Destination
    from ingest.reports import report_html, run_report
    from ingest.reports.report_files import BadReportId, report_name

    return SimpleNamespace(
        BadReportId=BadReportId,
        Destination=Destination,
        report_html=report_html,
        report_name=report_name,
        run_report=run_report,
    )


def register(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report",
        help="write the run report (one self-contained HTML file) from the audit",
        description="Build the run report from the audit CSVs of the last N days "
        "(<lake>/metadata/audit_YYYYMMDD.csv): the run (start, duration, tables succeeded / "
        "warned / failed / skipped, rows), a status grid of tables x days with each error on "
        "hover, rows loaded per day (total and per source) and the slowest tables as charts, "
        "and the reconciliation mismatches, schema changes and delete / late-row counts. "
        "One HTML file with no script and nothing to download: it opens offline. Every run "
        "also writes <lake>/metadata/reports/<run_id>.html and latest.html.",
    )
    formats = report.add_mutually_exclusive_group(required=True)
    formats.add_argument(
        "--html", action="store_true", help="write the report as HTML (the one format so far)"
    )
    report.add_argument(
        "--destination", help="lake root: file://PATH, az://CONTAINER or abfss://..."
    )
    report.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"days of audit in the grid and charts, today included (default {DEFAULT_DAYS})",
    )
    report.add_argument(
        "--run", metavar="ID", help="the run the report is about (default: the latest run)"
    )
    report.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="FILE",
        help=f"file to write (default ./{DEFAULT_OUT}; - writes to standard output)",
    )
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= MAX_DAYS:
        raise RequestError(f"--days must be a whole number from 1 to {MAX_DAYS}, got {args.days}")
    engine = _engine()
    if args.run is not None:
        try:
            engine.report_name(args.run)
        except engine.BadReportId as exc:
            raise RequestError(f"--run: {exc}") from None
    destination = args.destination or Settings.from_env().destination
    data = engine.run_report.collect(destination, args.days, args.run)
    where = engine.Destination.from_url(destination).display_url
    if args.run is not None and data.run is None:
        raise RequestError(
            f"run {args.run} has no row in the last {args.days} day(s) of the audit under "
            f"{where} (an older run: a larger --days; another lake: --destination)"
        )
    page = engine.report_html.render(data)
    if args.out == "-":
        sys.stdout.write(page)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    about = f"run {data.run.run_id}" if data.run else "no run"
    sys.stdout.write(
        f"report ({about}; {len(data.tables):,} table(s), {data.loads:,} load(s) in "
        f"{args.days} day(s) of audit under {where}) written to {out} "
        f"({len(page.encode('utf-8')) // 1024:,} KB)\n"
    )
    return 0
