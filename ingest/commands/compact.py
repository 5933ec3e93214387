"""`compact`: write keyed tables' current state as a new base, on demand."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from types import SimpleNamespace
from typing import Any

from ingest.settings import Settings


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.commands.report import table
    from ingest.job.maintenance import compact_jobs
    from ingest.views.refresh import refresh_after_run

    return SimpleNamespace(
        compact_jobs=compact_jobs,
        refresh_after_run=refresh_after_run,
        table=table,
    )


def register(subparsers: Any) -> None:
    compact = subparsers.add_parser(
        "compact",
        help="write keyed tables' current state as a new base (keeps their views fast)",
        description="For each INCREMENTAL job with a key (the configured primary_key, or the "
        "table's own): under the job's lease, write the table's current state (one row per "
        "key, deleted keys gone) as a new base, a completed load the current view starts "
        "from. Runs also do this by themselves past INGEST_COMPACT_LOADS / "
        "INGEST_COMPACT_RATIO. History keeps every version unless "
        "INGEST_HISTORY_RETENTION_DAYS says otherwise.",
    )
    compact.add_argument("--config", help="job configuration (default: INGEST_CONFIG_PATH)")
    compact.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    compact.add_argument(
        "--job", action="append", default=[], metavar="ID", help="only this job (repeatable)"
    )
    compact.add_argument("--json", action="store_true", help="print what was done as JSON")
    compact.set_defaults(func=cmd_compact)


def cmd_compact(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    config = args.config or settings.config_path
    destination = args.destination or settings.destination
    done = engine.compact_jobs(config, destination, args.job, settings)
    if any(d.load_id for d in done):  # the views name the new bases' files
        engine.refresh_after_run(config, destination, "compact")
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(d) for d in done], indent=2) + "\n")
    else:
        rows = [
            (
                d.job_id,
                d.load_id or "-",
                f"{d.rows:,}",
                d.files,
                d.loads_folded,
                d.loads_removed,
                f"{d.seconds:.1f}",
                d.skipped or d.error,
            )
            for d in done
        ]
        headers = ("job", "base", "rows", "files", "loads", "removed", "seconds", "note")
        sys.stdout.write(engine.table(headers, rows) + "\n")
    return 1 if any(d.error for d in done) else 0
