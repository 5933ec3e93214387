"""`discover`: list a source's tables and write job rows for them."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ingest.commands.output import show_table
from ingest.errors import RequestError
from ingest.settings import Settings

log = logging.getLogger(__name__)

#: source types discover can read (the SQL ones)
SQL_SOURCE_TYPES = ("postgresql", "mysql", "mssql", "oracle", "sqlite")


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.cli import command_for_hints, program_name
    from ingest.config import jobrows
    from ingest.config.jobrows import JOB_COLUMNS, read_job_file
    from ingest.configuration import load_config
    from ingest.errors import ConfigError
    from ingest.identifiers import is_source_name
    from ingest.secrets.resolver import build_resolver
    from ingest.sources import get_builder, source_types
    from ingest.sources.discovery import DEFAULT_FULL_BELOW, discover
    from ingest.sources.sql import classify_db_error

    return SimpleNamespace(
        ConfigError=ConfigError,
        DEFAULT_FULL_BELOW=DEFAULT_FULL_BELOW,
        JOB_COLUMNS=JOB_COLUMNS,
        build_resolver=build_resolver,
        classify_db_error=classify_db_error,
        command_for_hints=command_for_hints,
        discover=discover,
        get_builder=get_builder,
        is_source_name=is_source_name,
        jobrows=jobrows,
        load_config=load_config,
        program_name=program_name,
        read_job_file=read_job_file,
        source_types=source_types,
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="list a source's tables and write job rows for them",
        description="Connect to a SQL source (its secrets as for `run`), list the tables of a "
        "schema with their primary keys, row estimates (catalogue statistics) and watermark "
        "candidates (an indexed timestamp or date, or an increasing integer), and propose a "
        "job per table: FULL for small tables, INCREMENTAL on the best watermark with the "
        "primary key otherwise. With --out the rows are appended to a .csv or .xlsx job "
        "configuration (existing rows are kept, new job ids are unique, a table that already "
        "has a job is skipped); check them with `validate`, then `run`.",
    )
    parser.add_argument(
        "--source",
        required=True,
        metavar="NAME",
        help="source_name: the connection (secrets [sources.NAME], SOURCES__NAME__*, Key Vault)",
    )
    parser.add_argument(
        "--source-type",
        choices=SQL_SOURCE_TYPES,
        help="the source's type (default: the type of its jobs in --config or --out)",
    )
    parser.add_argument(
        "--schema",
        metavar="S",
        help="schema to list (default: the connection's default schema; written into "
        "schema_name only when given)",
    )
    parser.add_argument(
        "--tables",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only tables matching this shell pattern, e.g. 'order*' (case-insensitive; "
        "repeatable or comma-separated; default: every table)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="append the proposed job rows to this .csv or .xlsx (sheet jobs); created when "
        "missing",
    )
    parser.add_argument(
        "--config",
        help="job configuration to read the source's type from (default: INGEST_CONFIG_PATH "
        "or config/ingestion_config.xlsx, when it exists)",
    )
    parser.add_argument(
        "--full-below",
        type=int,
        metavar="N",
        help="propose FULL for tables estimated below N rows (default 100000)",
    )
    parser.add_argument(
        "--owner", default="", help="owner written into the new job rows (default: empty)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the discovered tables and the rows as JSON"
    )
    parser.set_defaults(func=cmd_discover)


def _source_type(args: argparse.Namespace, settings: Settings) -> str:
    """--source-type, else the type of the source's jobs in --out or the configuration."""
    lazy = _engine()
    if args.source_type:
        return str(args.source_type)
    candidates = [Path(args.out)] if args.out else []
    candidates.append(Path(args.config or settings.config_path))
    for path in candidates:
        if path.exists() and path.suffix.lower() in (".csv", ".xlsx", ".xlsm"):
            for row in lazy.read_job_file(path).rows:
                if str(row.get("source_name") or "").strip() == args.source:
                    raw = str(row.get("source_type") or "").strip().lower()
                    return lazy.source_types().aliases.get(raw, raw)
    raise RequestError(
        f"discover: which kind of database is source {args.source!r}? Pass --source-type "
        f"({', '.join(SQL_SOURCE_TYPES)}); it is read from the configuration only when a job "
        "of that source is already there"
    )


def _patterns(values: list[str]) -> list[str]:
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def cmd_discover(args: argparse.Namespace) -> int:
    lazy = _engine()
    settings = Settings.from_env()
    if not lazy.is_source_name(args.source):
        raise RequestError(
            f"--source {args.source!r} must be snake_case (lowercase letters, digits, _), as "
            "source_name in the configuration"
        )
    if args.full_below is not None and args.full_below < 0:
        raise RequestError("--full-below must be 0 or more")
    source_type = _source_type(args, settings)
    if source_type not in SQL_SOURCE_TYPES:
        raise RequestError(
            f"discover reads SQL sources ({', '.join(SQL_SOURCE_TYPES)}); source "
            f"{args.source!r} is {source_type!r}"
        )
    out = Path(args.out) if args.out else None
    try:
        existing = lazy.jobrows.read_job_file(out) if out else None
    except lazy.jobrows.JobFileError as exc:
        raise RequestError(str(exc)) from None

    builder = lazy.get_builder(source_type)
    resolver = lazy.build_resolver(settings.secrets_file, settings.key_vault_url)
    try:
        secrets = builder.secrets(resolver, args.source)
        engine = builder.engine(secrets)
        try:
            found = lazy.discover(
                engine,
                args.schema,
                _patterns(args.tables),
                lazy.DEFAULT_FULL_BELOW if args.full_below is None else args.full_below,
            )
        finally:
            engine.dispose()
    except Exception as exc:  # a connection or catalogue failure: say what, never a secret
        failure = lazy.classify_db_error(exc, f"source {args.source!r}") or exc
        sys.stderr.write(f"error: {resolver.redactor.redact(str(failure))}\n")
        return 1

    configured = existing.configured_tables() if existing else {}
    new_rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for table in found.tables:
        key = lazy.jobrows.table_key(args.source, args.schema, table.name)
        if key in configured:
            skipped[table.name] = f"already job {configured[key]} in {out}"
        elif table.proposed:
            new_rows.append(_job_row(table, source_type, args, lazy.program_name()))
    ids = lazy.jobrows.next_job_ids(existing.job_ids() if existing else (), len(new_rows))
    for row, job_id in zip(new_rows, ids, strict=True):
        row["job_id"] = job_id

    if new_rows:
        problems = _check_rows(new_rows, lazy.load_config, lazy.ConfigError)
        if problems:  # never write rows `validate` would refuse
            sys.stderr.write("error: the proposed rows do not validate:\n" + problems + "\n")
            return 1
    payload: dict[str, Any] | None = None
    if args.json:
        payload = {
            "source_name": args.source,
            "source_type": source_type,
            "schema": found.schema,
            "tables": [
                {
                    "table_name": t.name,
                    "primary_key": list(t.primary_key),
                    "estimated_rows": t.estimated_rows,
                    "watermark_candidates": list(t.watermarks),
                    "load_type": t.load_type,
                    "watermark_column": t.watermark,
                    "note": skipped.get(t.name) or t.note,
                }
                for t in found.tables
            ],
            "rows": new_rows,
            "out": str(out) if out else None,
        }
    _print_or_dump(args, found, skipped, new_rows, payload)
    if out and new_rows:
        try:
            lazy.jobrows.append_job_rows(out, new_rows)
        except (lazy.jobrows.JobFileError, OSError) as exc:
            sys.stderr.write(f"error: cannot write {out}: {exc}\n")
            return 1
    if not args.json:
        _summary(args, found, new_rows, skipped, out)
    return 0


def _job_row(table: Any, source_type: str, args: argparse.Namespace, command: str) -> dict:
    estimate = "unknown" if table.estimated_rows is None else f"~{table.estimated_rows:,}"
    note = f"discovered {dt.date.today():%Y-%m-%d} by {command} discover: {estimate} rows"
    if table.note:
        note += f"; {table.note}"
    return {
        "job_id": "",
        "enabled": "Y",
        "source_type": source_type,
        "source_name": args.source,
        "schema_name": args.schema or "",
        "table_name": table.name,
        "load_type": str(table.load_type),
        "watermark_column": table.watermark or "",
        "primary_key": ",".join(table.primary_key),
        "owner": args.owner or "",
        "notes": note,
    }


def _check_rows(rows: list[dict[str, Any]], load_config: Any, config_error: Any) -> str:
    """The configuration's own check on the new rows (problems as text; '' when valid)."""
    lazy = _engine()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "discovered.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=lazy.JOB_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        try:
            load_config(path)
        except config_error as exc:
            return "\n".join(f"  - {p}" for p in exc.problems)
    return ""


def _print_or_dump(
    args: argparse.Namespace,
    found: Any,
    skipped: dict[str, str],
    new_rows: list[dict[str, Any]],
    payload: dict[str, Any] | None,
) -> None:
    if payload is not None:
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    ids = {row["table_name"]: row["job_id"] for row in new_rows}
    show_table(
        ("table", "primary key", "rows (est.)", "watermark candidates", "job", "load", "note"),
        [
            (
                t.name,
                ", ".join(t.primary_key),
                None if t.estimated_rows is None else f"{t.estimated_rows:,}",
                ", ".join(t.watermarks),
                ids.get(t.name, ""),
                (f"{t.load_type} on {t.watermark}" if t.watermark else str(t.load_type)),
                skipped.get(t.name) or t.note,
            )
            for t in found.tables
        ],
        sys.stdout,
        null="?",
    )


def _summary(
    args: argparse.Namespace,
    found: Any,
    new_rows: list[dict[str, Any]],
    skipped: dict[str, str],
    out: Path | None,
) -> None:
    lazy = _engine()
    where = f"schema {found.schema}" if found.schema else "the default schema"
    sys.stdout.write(
        f"\n{len(found.tables)} table(s) in {where} of source {args.source!r} "
        f"({found.source_type}); {len(new_rows)} new job row(s)"
        + (f", {len(skipped)} already configured" if skipped else "")
        + "\n"
    )
    if out and new_rows:
        command = lazy.command_for_hints()
        sys.stdout.write(
            f"appended to {out}. Next:\n  {command} validate --config {out}\n"
            f"  {command} run --config {out}\n"
        )
    elif new_rows:
        sys.stdout.write("nothing written; add --out FILE (.csv or .xlsx) to append the rows\n")
