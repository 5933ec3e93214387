"""`backfill` and `catalog`: the data-trust commands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ingest.settings import Settings

if TYPE_CHECKING:  # types only: the CLI starts without the engine
    from ingest.model.result import JobResult
    from ingest.model.summary import RunSummary

log = logging.getLogger(__name__)


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.cli import program_name
    from ingest.commands.core import print_outcome, run_plan
    from ingest.plan import plan_backfill
    from ingest.reports.catalog import write_catalog
    from ingest.run_request import cli_backfill
    from ingest.runner import prepare_local_run

    return SimpleNamespace(
        cli_backfill=cli_backfill,
        plan_backfill=plan_backfill,
        prepare_local_run=prepare_local_run,
        print_outcome=print_outcome,
        program_name=program_name,
        run_plan=run_plan,
        write_catalog=write_catalog,
    )


def register(subparsers: Any) -> None:
    backfill = subparsers.add_parser(
        "backfill",
        help="re-extract a watermark range of an INCREMENTAL job",
        description="Re-extract the rows of one INCREMENTAL job whose watermark is in "
        "[--from, --to) into the lake (same layout; audit load_type BACKFILL). The job's "
        "stored watermark does not move: its next run loads exactly what it would have. "
        "Exit 0 on success, 1 when the load failed, 2 on a bad config or arguments.",
    )
    backfill.add_argument("--job", required=True, metavar="ID", help="job id to backfill")
    backfill.add_argument(
        "--from", dest="start", required=True, metavar="X", help="first watermark (inclusive)"
    )
    backfill.add_argument(
        "--to", dest="end", metavar="Y", help="end watermark (exclusive; default: no end)"
    )
    backfill.add_argument("--config", help="job configuration .xlsx or .csv")
    backfill.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    backfill.add_argument("--run-id", help="run id (default: generated)")
    backfill.add_argument("--json", action="store_true", help="print the result as JSON")
    backfill.set_defaults(func=cmd_backfill)

    catalog = subparsers.add_parser(
        "catalog",
        help="write the jobs catalog (.xlsx) and the data dictionary (.md)",
        description="Generate PRODUCTION_JOBS_CATALOG.xlsx and DATA_DICTIONARY.md from the "
        "job configuration, the schemas dlt stored in the lake and the audit files.",
    )
    catalog.add_argument("--config", help="job configuration .xlsx or .csv")
    catalog.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    catalog.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    catalog.set_defaults(func=cmd_catalog)


def execute_backfill(
    settings: Settings,
    *,
    config_path: str,
    destination: str,
    job_id: str,
    start: str,
    end: str | None = None,
    run_id: str | None = None,
) -> tuple[RunSummary, list[JobResult]]:
    """plan_backfill -> run the task -> audit. Raises ConfigError/RequestError first."""
    engine = _engine()
    engine.prepare_local_run(destination)
    the_plan = engine.plan_backfill(config_path, destination, job_id, start, end, run_id)
    planned = the_plan.backfill
    log.info(
        "backfill %s: job %s, watermark [%s, %s)",
        the_plan.run_id,
        job_id,
        planned.start if planned else start,
        (planned.end if planned else end) or "",
    )
    return engine.run_plan(the_plan, settings)


def cmd_backfill(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    request = engine.cli_backfill(args.job, args.start, args.end, args.run_id)
    clock = time.monotonic()
    summary, results = execute_backfill(
        settings,
        config_path=args.config or settings.config_path,
        destination=args.destination or settings.destination,
        job_id=request.job,
        start=str(request.start),
        end=request.end if request.end is None else str(request.end),
        run_id=args.run_id,
    )
    return engine.print_outcome(summary, results, as_json=args.json, started=clock)


def cmd_catalog(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    paths = engine.write_catalog(
        args.config or settings.config_path,
        args.destination or settings.destination,
        args.out,
        command=engine.program_name(),
    )
    for path in paths:
        sys.stdout.write(f"wrote {path}\n")
    return 0
