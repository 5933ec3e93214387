"""`run`, `validate` and `plan`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ingest.commands.output import show_table
from ingest.settings import Settings
from ingest.vocabulary import Status

if TYPE_CHECKING:  # types only: the CLI starts without the engine
    from ingest.model.plan import Plan
    from ingest.model.result import JobResult
    from ingest.model.summary import RunSummary

log = logging.getLogger(__name__)


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.audit import AuditWriteError, write_audit
    from ingest.configuration import load_config
    from ingest.errors import ConfigError
    from ingest.job import classify_error
    from ingest.model.run import Run
    from ingest.model.summary import RunSummary
    from ingest.plan import plan
    from ingest.run_request import cli_run
    from ingest.runner import prepare_local_run, run_tasks
    from ingest.runtime.optional import check_jobs
    from ingest.secrets.resolver import build_resolver
    from ingest.sources import capabilities, get_builder

    return SimpleNamespace(
        AuditWriteError=AuditWriteError,
        ConfigError=ConfigError,
        Run=Run,
        RunSummary=RunSummary,
        build_resolver=build_resolver,
        capabilities=capabilities,
        check_jobs=check_jobs,
        classify_error=classify_error,
        cli_run=cli_run,
        get_builder=get_builder,
        load_config=load_config,
        plan=plan,
        prepare_local_run=prepare_local_run,
        run_tasks=run_tasks,
        write_audit=write_audit,
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="job configuration .xlsx or .csv (default: INGEST_CONFIG_PATH or "
        "config/ingestion_config.xlsx)",
    )


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the enabled jobs",
        description="Run the enabled jobs: extract each table with dlt into the lake, then "
        "append the audit. Exit 0 when all succeeded, 1 when some failed, 2 on a bad config.",
    )
    _common(run)
    run.add_argument("--destination", help="lake root: file://PATH, az://CONTAINER or abfss://...")
    run.add_argument(
        "--job", action="append", default=[], metavar="ID", help="only this job (repeatable)"
    )
    run.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="only this source (repeatable)",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore stored watermarks and reload from initial_watermark",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="jobs in parallel (processes, default 1)",
    )
    run.add_argument("--run-id", help="run id (default: generated); the same id twice loads once")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.set_defaults(func=cmd_run)

    validate = subparsers.add_parser(
        "validate",
        help="check the configuration without loading",
        description="Check the configuration file (every problem at once); with "
        "--check-connections also resolve each source's secrets and connect to it.",
    )
    _common(validate)
    validate.add_argument(
        "--check-connections",
        action="store_true",
        help="resolve secrets and connect to every enabled job's source",
    )
    validate.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (problems, warnings, one check per job)",
    )
    validate.set_defaults(func=cmd_validate)

    plan = subparsers.add_parser(
        "plan", help="print what a run would do", description="Print the jobs a run would execute."
    )
    _common(plan)
    plan.add_argument("--destination", help="lake root (default: INGEST_DESTINATION)")
    plan.add_argument(
        "--job", action="append", default=[], metavar="ID", help="only this job (repeatable)"
    )
    plan.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="only this source (repeatable)",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)


def _print_warnings(warnings: tuple[str, ...] | list[str]) -> None:
    for warning in warnings:
        log.warning("config: %s", warning)


SUMMARY_HEADERS = (
    "job",
    "source",
    "table",
    "load",
    "status",
    "rows",
    "files",
    "seconds",
    "watermark",
    "error",
)


def summary_rows(results: list[JobResult]) -> list[tuple[Any, ...]]:
    return [
        (
            r.job_id,
            r.source_name,
            r.table_name,
            r.load_type,
            r.status,
            f"{r.rows_loaded:,}",
            r.files_written,
            f"{r.duration_s:.1f}",
            r.watermark_after,
            r.error[:80],
        )
        for r in results
    ]


def run_plan(
    the_plan: Plan, settings: Settings, *, workers: int = 1, trigger: str = "cli"
) -> tuple[RunSummary, list[JobResult]]:
    """Steps 2 and 3 for a plan made by `plan` or `plan_backfill`: run each task, audit."""

    engine = _engine()
    _print_warnings(the_plan.warnings)
    for skipped in the_plan.skipped:
        log.warning("job %s skipped: %s", skipped.job_id, skipped.reason)
    started = dt.datetime.now(dt.UTC).isoformat()
    log.info(
        "run %s: %d job(s), %d worker(s), lake %s",
        the_plan.run_id,
        len(the_plan.tasks),
        workers,
        the_plan.destination,
    )
    results = engine.run_tasks(the_plan.tasks, settings, workers=workers)
    run = engine.Run(the_plan.run_id, the_plan.destination, tuple(results), started, trigger)
    try:
        summary = engine.write_audit(run)
    except engine.AuditWriteError as exc:  # the results are still printed; the run fails (exit 1)
        log.error("audit not written: %s", exc)
        summary = replace(engine.RunSummary.of(run.run_id, results), audit_error=str(exc))
        return summary, results
    # after the audit: the lake's views (never fails the run; see ingest.views.refresh)
    from ingest.views.refresh import refresh_after_run

    views = refresh_after_run(the_plan.config_path, the_plan.destination, the_plan.run_id)
    # then the run's HTML report (never fails the run; see ingest.reports.report_files)
    from ingest.reports.report_files import report_after_run

    report = report_after_run(the_plan.destination, the_plan.run_id)
    return replace(summary, views=views, report=report), results


def print_outcome(
    summary: RunSummary, results: list[JobResult], *, as_json: bool, started: float
) -> int:
    """The end of `run`/`backfill`: a table (or JSON), one summary line; the exit code."""
    if as_json:
        out = {"summary": summary.to_dict(), "results": [r.to_dict() for r in results]}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        show_table(SUMMARY_HEADERS, summary_rows(results), sys.stdout)
        sys.stdout.write(
            f"\nrun {summary.run_id}: {summary.jobs_succeeded} succeeded, "
            # data trust: WARN = loaded but flagged by reconciliation (exit code stays 0)
            + (f"{summary.jobs_warned} warned, " if summary.jobs_warned else "")
            + f"{summary.jobs_failed} failed, {summary.rows_loaded:,} rows, "
            f"{time.monotonic() - started:.1f} s; audit: "
            f"{summary.audit_path or 'NOT WRITTEN'}\n"
        )
        if summary.audit_error:
            sys.stdout.write(f"error: {summary.audit_error}\n")
        views = summary.views or {}
        if views.get("error") or views.get("errors"):
            failed = views.get("error") or "; ".join(
                f"{e['job_id']}: {e['error']}" for e in views["errors"]
            )
            sys.stdout.write(f"views not refreshed: {failed}\n")
        report = summary.report or {}
        if report.get("path"):
            sys.stdout.write(f"report: {report['path']}\n")
        elif report.get("error"):
            sys.stdout.write(f"report not written: {report['error']}\n")
    return 1 if summary.failed_run else 0


def execute_run(
    settings: Settings,
    *,
    config_path: str,
    destination: str,
    jobs: list[str] | None = None,
    sources: list[str] | None = None,
    full_refresh: bool = False,
    workers: int = 1,
    run_id: str | None = None,
) -> tuple[RunSummary, list[JobResult]]:
    """plan -> run each job -> audit. Raises ConfigError/RequestError before loading anything."""
    engine = _engine()
    engine.prepare_local_run(destination, workers)
    the_plan = engine.plan(
        config_path,
        destination=destination,
        run_id=run_id,
        jobs=jobs,
        sources=sources,
        full_refresh=full_refresh,
    )
    return run_plan(the_plan, settings, workers=workers)


def cmd_run(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    request, options = engine.cli_run(
        args.job, args.source, args.full_refresh, args.workers, args.run_id
    )
    clock = time.monotonic()
    summary, results = execute_run(
        settings,
        config_path=args.config or settings.config_path,
        destination=args.destination or settings.destination,
        jobs=request.jobs,
        sources=request.sources,
        full_refresh=request.full_refresh,
        workers=options.workers,
        run_id=options.run_id,
    )
    return print_outcome(summary, results, as_json=args.json, started=clock)


def cmd_validate(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    path = args.config or settings.config_path
    try:
        config = engine.load_config(path)
    except engine.ConfigError as exc:
        if not args.json:
            raise
        refused = {"config": path, "ok": False, "problems": [str(p) for p in exc.problems]}
        sys.stdout.write(json.dumps(refused, indent=2) + "\n")
        return 2
    enabled = config.enabled_jobs
    # optional packages (pyproject.toml extras), by what each source type can use
    missing, notes = engine.check_jobs(
        enabled, lambda kind: engine.capabilities(kind).fast_path_extra
    )
    warnings = [*config.warnings, *notes]
    report: dict[str, Any] = {
        "config": str(config.path),
        "jobs": len(config.jobs),
        "enabled": len(enabled),
        "warnings": warnings,
        "errors": list(missing),
    }
    checks: list[dict[str, str]] = []
    if args.check_connections:
        resolver = engine.build_resolver(settings.secrets_file, settings.key_vault_url)
        for job in enabled:
            builder = None
            try:
                builder = engine.get_builder(job.source_type)
                secrets = builder.secrets(resolver, job.source_name)
                builder.check_connection(job, secrets)
                error = ""
            except Exception as exc:  # report every job, then decide
                failure = engine.classify_error(
                    exc,
                    job,
                    f"source {job.source_name!r}",
                    builder=builder,
                    redact=resolver.redactor.redact,
                )
                error = resolver.redactor.redact(str(failure))
            checks.append(
                {
                    "job_id": job.job_id,
                    "source_name": job.source_name,
                    "table_name": job.table_name,
                    "status": "OK" if not error else str(Status.FAILED),
                    "error": error,
                }
            )
        report["checks"] = checks
    failed = [c for c in checks if c["error"]]
    report["ok"] = not missing and not failed
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0 if report["ok"] else 1
    _print_warnings(warnings)
    sys.stdout.write(f"{config.path}: OK, {len(config.jobs)} job(s), {len(enabled)} enabled\n")
    for problem in missing:
        sys.stdout.write(f"error: {problem}\n")
    if args.check_connections:
        show_table(
            ("job", "source", "table", "check"),
            [(c["job_id"], c["source_name"], c["table_name"], c["status"]) for c in checks],
            sys.stdout,
        )
        for check in failed:  # whole, below the table: the fix is often at the end
            sys.stdout.write(f"\njob {check['job_id']}: {check['error']}\n")
    return 0 if report["ok"] else 1


def cmd_plan(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    the_plan = engine.plan(
        args.config or settings.config_path,
        destination=args.destination or settings.destination,
        jobs=args.job,
        sources=args.source,
        run_id="(plan)",
    )
    _print_warnings(the_plan.warnings)
    if args.json:
        sys.stdout.write(json.dumps(the_plan.to_dict(), indent=2) + "\n")
        return 0
    rows = []
    for task in the_plan.tasks:
        job = task.job
        rows.append(
            (
                job.job_id,
                job.source_type,
                job.source_name,
                ".".join(p for p in (job.schema_name, job.table_name) if p),
                job.load_type + (f" (split {job.split})" if job.split else ""),
                job.watermark_column or "",
                job.schedule or "DAILY",
            )
        )
    show_table(
        ("job", "type", "source", "table", "load", "watermark", "schedule"), rows, sys.stdout
    )
    for skipped in the_plan.skipped:
        sys.stdout.write(f"skipped {skipped.job_id}: {skipped.reason}\n")
    sys.stdout.write(f"\n{len(rows)} job(s) would run into {the_plan.destination}\n")
    return 0
