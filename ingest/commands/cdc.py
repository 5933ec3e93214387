"""`cdc status` and `cdc drop`: the replication slots of CDC jobs (`ingest.job.cdc_slots`)."""

from __future__ import annotations

import argparse
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
    from ingest.job.cdc_slots import drop_slots, slot_status

    return SimpleNamespace(
        drop_slots=drop_slots,
        slot_status=slot_status,
        table=table,
    )


def register(subparsers: Any) -> None:
    cdc = subparsers.add_parser(
        "cdc",
        help="CDC jobs' replication slots: status (lag, retained WAL) and drop",
        description="The logical replication slots of the CDC jobs' source databases.",
    )
    commands = cdc.add_subparsers(dest="cdc_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="list the slots with their lag and the WAL they keep",
        description="Every logical slot of the CDC jobs' source databases: the job it belongs "
        "to, whether a reader holds it, its confirmed position, the WAL it keeps on the source "
        "(retained bytes) and its lag. A slot no job reads any more keeps WAL until the "
        "source's disk fills: drop it.",
    )
    status.add_argument("--config", help="job configuration (default: INGEST_CONFIG_PATH)")
    status.add_argument("--job", action="append", default=[], metavar="ID", help="only this job")
    status.add_argument("--json", action="store_true", help="print the slots as JSON")
    status.set_defaults(func=cmd_status)
    drop = commands.add_parser(
        "drop",
        help="drop a CDC job's slot and publication",
        description="Drop the job's replication slot (the source may then remove the WAL it "
        "kept) and its publication. The job's next run says its slot is gone; run it with "
        "--full-refresh to copy the table again.",
    )
    drop.add_argument("--config", help="job configuration (default: INGEST_CONFIG_PATH)")
    drop.add_argument(
        "--job", action="append", default=[], metavar="ID", required=True, help="the job"
    )
    drop.add_argument("--keep-publication", action="store_true", help="drop the slot only")
    drop.set_defaults(func=cmd_drop)


def cmd_status(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    rows = engine.slot_status(args.config or settings.config_path, args.job, settings)
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return 0
    headers = ("source", "database", "slot", "job", "active", "confirmed", "retained", "lag")
    lines = [
        (
            r.source_name,
            r.database,
            r.slot_name,
            r.job_id or "(no job)",
            "yes" if r.active else "no",
            r.confirmed_lsn or "-",
            _bytes(r.retained_bytes),
            _bytes(r.lag_bytes),
        )
        for r in rows
    ]
    sys.stdout.write(engine.table(headers, lines) + "\n")
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    done = engine.drop_slots(
        args.config or settings.config_path,
        args.job,
        settings,
        keep_publication=args.keep_publication,
    )
    for job_id, dropped in done:
        sys.stdout.write(f"job {job_id}: dropped {', '.join(dropped) or 'nothing (none left)'}\n")
    return 0


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(value)
