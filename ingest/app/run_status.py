"""`GET /api/runs/{id}`: a run's status, progress and per-table results, paged.

- The run's Durable instance: its own id (scheduled runs: `nightly-<date>`), or the fixed
  instance of on-demand runs (`MANUAL_INSTANCE`) while it still holds this run.
- Progress: the run orchestration's custom status counts the tables of finished batches; the
  tables of running batches are counted from those batches' own custom status (at most one
  Durable query per lane), so no single status ever lists the tables.
- Split tables (`ingest.job.split`) still loading: `progress.splits`, job id -> {"chunks",
  "done", "failed", "rows"} (chunks landed so far and their rows), from the batches' status.
- Per-table results: a page of the run store's results (written by the tables as they finish);
  for runs whose run store is gone, a page of the audit rows (last 7 days).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from ingest.app import MANUAL_INSTANCE, ORCHESTRATOR
from ingest.app.batching import batch_instance_id
from ingest.app.instances import run_id_of, status_text
from ingest.model.result import check_projection

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: the columns a table's entry in the status shows (the audit has every column)
TABLE_FIELDS = check_projection(
    (
        "job_id",
        "source_name",
        "table_name",
        "load_type",
        "status",
        "rows_loaded",
        "files_written",
        "duration_s",
        "error",
    ),
    "TABLE_FIELDS",
)
MAX_ERROR_CHARS = 500


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.app.runstore import RunStore
    from ingest.reports.history import run_results

    return SimpleNamespace(
        RunStore=RunStore,
        run_results=run_results,
    )


class BadPage(ValueError):
    """`page` / `page_size` are not usable; the message says why (HTTP 400)."""


def page_args(params: Mapping[str, str]) -> tuple[int, int]:
    values = []
    for name, default, top in (("page", 1, None), ("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        raw = params.get(name)
        try:
            value = default if raw is None or raw == "" else int(raw)
        except ValueError:
            raise BadPage(f"'{name}' must be a whole number, got {raw!r}") from None
        if value < 1 or (top is not None and value > top):
            limit = f"between 1 and {top}" if top else "at least 1"
            raise BadPage(f"'{name}' must be {limit}, got {value}")
        values.append(value)
    return values[0], values[1]


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def find_instance(client: Any, run_id: str) -> Any | None:
    """The Durable instance of run `run_id`, or None (purged, or replaced by a later run)."""
    status = await client.get_status(run_id)
    if status and getattr(status, "name", None) in (None, ORCHESTRATOR):
        return status
    slot = await client.get_status(MANUAL_INSTANCE, show_input=True)
    if slot and run_id_of(slot) == run_id:
        return slot
    return None


async def live_progress(client: Any, run_id: str, custom: Any) -> Any:
    """The run's progress with the running batches' tables added up."""
    custom = _parse(custom)
    if not isinstance(custom, dict) or "batches_running" not in custom:
        return custom
    progress = {k: v for k, v in custom.items() if k != "batches_running"}
    progress["running"] = 0
    for batch in custom.get("batches_running") or []:
        status = await client.get_status(batch_instance_id(run_id, int(batch)))
        part = _parse(getattr(status, "custom_status", None)) if status else None
        if isinstance(part, dict):
            for key in ("done", "failed", "running"):
                progress[key] = int(progress.get(key) or 0) + int(part.get(key) or 0)
            for job_id, split in (part.get("splits") or {}).items():
                progress.setdefault("splits", {})[job_id] = split
    return progress


def audit_results(destination: str, run_id: str) -> list[dict[str, str]]:
    """The audit rows of a run (last 7 days of audit files)."""
    engine = _engine()
    return engine.run_results(destination, run_id)


def table_entry(result: Mapping[str, Any]) -> dict[str, Any]:
    entry = {key: result.get(key) for key in TABLE_FIELDS if key in result}
    if entry.get("error"):
        entry["error"] = str(entry["error"])[:MAX_ERROR_CHARS]
    return entry


def _page(total: int, page: int, page_size: int) -> dict[str, Any]:
    return {
        "page": page,
        "page_size": page_size,
        "tables_reported": total,
        "pages": max(1, -(-total // page_size)),
    }


def tables_from_store(
    destination: str, run_id: str, page: int, page_size: int
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A page of the run store's results (sorted by job id); None without a run store."""
    engine = _engine()
    store = engine.RunStore(destination, run_id)
    if not store.exists():
        return None
    ids = store.result_ids()
    wanted = ids[(page - 1) * page_size : page * page_size]
    found = store.results(wanted)
    rows = [table_entry(found[job_id].to_dict()) for job_id in wanted if job_id in found]
    info = _page(len(ids), page, page_size)
    info["tables_planned"] = store.plan().get("total")
    info["source"] = "run store"
    return rows, info


def tables_from_audit(
    rows: list[dict[str, str]], page: int, page_size: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    wanted = rows[(page - 1) * page_size : page * page_size]
    info = _page(len(rows), page, page_size)
    info["source"] = "audit"
    return [table_entry(row) for row in wanted], info


def durable_body(status: Any, run_id: str, progress: Any) -> dict[str, Any]:
    runtime = status_text(status)
    body: dict[str, Any] = {
        "run_id": run_id,
        "instance_id": status.instance_id,
        "status": runtime,
        "source": "durable",
        "created_time": status.created_time,
        "last_updated_time": status.last_updated_time,
        "progress": progress,
    }
    output = _parse(status.output)
    if isinstance(output, dict):
        body["summary"] = {k: v for k, v in output.items() if k != "tables"}
    elif output is not None:
        body["error" if runtime == "Failed" else "output"] = output
    return body


async def run_body(
    client: Any, destination: str, run_id: str, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE
) -> dict[str, Any] | None:
    """The body of GET /api/runs/{id}; None when neither Durable, the run store nor the audit
    knows the run.

    Status and progress from Durable while it has the run's instance, else the summary of its
    audit rows (status Completed; "Unknown" when only a run store is left: a run that never
    wrote its audit, or whose audit is older than the 7 days searched). Tables from the run
    store, else from the audit.
    """
    status = await find_instance(client, run_id)
    body: dict[str, Any] | None = None
    if status is not None:
        body = durable_body(
            status, run_id, await live_progress(client, run_id, status.custom_status)
        )
    tables = tables_from_store(destination, run_id, page, page_size)
    if body is None or tables is None:
        rows = audit_results(destination, run_id)
        if rows and body is None:
            # the same counts as the run's own summary (an engine module: loaded when used)
            from ingest.model.summary import summarize

            body = {"run_id": run_id, "status": "Completed", "source": "audit"}
            body["summary"] = summarize(rows)
        if rows and tables is None:
            tables = tables_from_audit(rows, page, page_size)
    if body is None and tables is not None:
        body = {"run_id": run_id, "status": "Unknown", "source": "run store"}
    if body is None:
        return None
    body["tables"], body["tables_page"] = tables or ([], _page(0, page, page_size))
    return body
