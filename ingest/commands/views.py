"""`views` and `query`: the lake as tables."""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace
from typing import Any

from ingest.settings import Settings
from ingest.views import DIALECTS


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.commands.output import NULL, json_value, show_table
    from ingest.errors import RequestError
    from ingest.views.duck import run_query
    from ingest.views.refresh import refresh_for_config

    return SimpleNamespace(
        NULL=NULL,
        RequestError=RequestError,
        json_value=json_value,
        refresh_for_config=refresh_for_config,
        run_query=run_query,
        show_table=show_table,
    )


def register(subparsers: Any) -> None:
    views = subparsers.add_parser(
        "views",
        help="write the lake's views (DuckDB, Synapse, Databricks, Spark)",
        description="Write one view per job from the config, the lake's completed loads and "
        "the stored dlt schemas: INCREMENTAL tables are the union of their completed loads, "
        "FULL tables their latest completed snapshot (plus <table>_history). Without --out "
        "the files go into the lake (metadata/views/<dialect>/), as after every run.",
    )
    views.add_argument("--config", help="job configuration (default: INGEST_CONFIG_PATH)")
    views.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    views.add_argument(
        "--dialect",
        action="append",
        choices=DIALECTS,
        metavar="DIALECT",
        help=f"only this dialect (repeatable; {', '.join(DIALECTS)}; default all)",
    )
    views.add_argument(
        "--out", metavar="DIR", help="write into this local folder instead of the lake"
    )
    views.add_argument(
        "--force", action="store_true", help="rewrite the lake's view files even if unchanged"
    )
    views.set_defaults(func=cmd_views)

    query = subparsers.add_parser(
        "query",
        help="run SQL with DuckDB over the lake's views",
        description="Run a query with DuckDB over the lake (local or Azure) using the views "
        'every run writes, e.g. "select * from demo_shop.orders limit 5".',
    )
    query.add_argument("sql", help="the query; views are named <source_name>.<table>")
    query.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    query.add_argument(
        "--max-rows", type=int, default=100, metavar="N", help="rows to print (default 100)"
    )
    query.add_argument(
        "--json",
        action="store_true",
        help="print columns and rows as JSON (NULL as null; decimals, big integers as text)",
    )
    query.set_defaults(func=cmd_query)


def cmd_views(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    report = engine.refresh_for_config(
        args.config or settings.config_path,
        args.destination or settings.destination,
        dialects=args.dialect or DIALECTS,
        out=args.out,
        force=args.force,
    )
    for job_id, reason in report.skipped:
        sys.stdout.write(f"job {job_id}: no view, {reason}\n")
    for job_id, error in report.errors:
        sys.stdout.write(f"job {job_id}: FAILED: {error}\n")
    sys.stdout.write(report.summary_line() + f" ({report.seconds:.2f} s)\n")
    return 1 if report.errors else 0


def cmd_query(args: argparse.Namespace) -> int:
    engine = _engine()
    if args.max_rows < 1:
        raise engine.RequestError("--max-rows must be at least 1")
    settings = Settings.from_env()
    result = engine.run_query(args.destination or settings.destination, args.sql, args.max_rows)
    if args.json:
        payload = {
            "columns": list(result.columns),
            "rows": [[engine.json_value(v) for v in row] for row in result.rows],
            "truncated": result.truncated,
            "views": list(result.views),
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return 0
    if result.columns:
        engine.show_table(result.columns, result.rows, sys.stdout, null=engine.NULL)
        more = f" (more not shown; --max-rows {args.max_rows})" if result.truncated else ""
        sys.stdout.write(f"{len(result.rows)} row(s){more}\n")
    return 0
