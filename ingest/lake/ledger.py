"""Which tasks already loaded a job: the task ledger, committed atomically with each load.

A task is identified by its run id and its kind (`ingest.model.task.Task.key`). Every load records
its task in the pipeline state that dlt commits together with the load (state file, then
completion marker), so "this task has loaded" is true exactly when its load completed. A task
that finds itself in the ledger reports that load instead of loading again (Durable retries, a
rerun with the same `--run-id`). The ledger keeps the last `KEEP` tasks of the job; an older
run id run again is a new load with its own audit row.

The same state entry keeps the boundary record of INCREMENTAL jobs: how many rows with the
newest watermark value have landed so far, and a hash of each up to a cap
(`ingest.checks.boundary`): the next run tells re-read boundary rows from new ones with it, in
state that never grows with the number of rows sharing one watermark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dlt

from ingest.model.task import PLAIN, task_key

#: our key in the dlt source state
STATE_KEY = "ingest"
#: tasks remembered per job (and per backfill pipeline)
KEEP = 200
#: the name of the resource that writes the ledger entry (it yields no data, makes no table)
LEDGER_RESOURCE = "_ingest_ledger"


@dataclass(frozen=True)
class Entry:
    """One task's committed load."""

    load_id: str
    watermark_before: str = ""
    #: whether it is the job's latest load (the restored state is the one it committed)
    latest: bool = False


def _entry_of(state: Mapping[str, Any]) -> Mapping[str, Any]:
    for source in (state.get("sources") or {}).values():
        entry = source.get(STATE_KEY)
        if entry:
            return dict(entry)
    return {}


def find(state: Mapping[str, Any], key: str) -> Entry | None:
    """The load of task `key` recorded in a restored pipeline state, or None."""
    entry = _entry_of(state)
    tasks = entry.get("tasks") or {}
    found = tasks.get(key)
    if found:
        return Entry(
            str(found.get("load_id") or ""),
            str(found.get("watermark_before") or ""),
            latest=next(reversed(tasks)) == key,
        )
    # ledgers written before task kinds existed recorded only the last plain run
    if entry.get("run_id") and task_key(str(entry["run_id"]), PLAIN) == key:
        return Entry(str(entry.get("load_id") or ""), latest=True)
    return None


def last_value(state: Mapping[str, Any], cursor: str) -> Any:
    """The incremental cursor's stored value for column `cursor`, or None."""
    for source in (state.get("sources") or {}).values():
        for resource in (source.get("resources") or {}).values():
            incremental = (resource.get("incremental") or {}).get(cursor)
            if incremental:
                return incremental.get("last_value")
    return None


def boundary(state: Mapping[str, Any]) -> Boundary | None:
    """The boundary record of the last load (see module doc), or None."""
    record = _entry_of(state).get("boundary")
    if not record:
        return None
    hashes = record.get("hashes")
    return Boundary(
        str(record.get("value") or ""),
        int(record.get("rows") or 0),
        tuple(str(h) for h in hashes) if isinstance(hashes, list) else None,
    )


def forget_cursor(pipeline: Any) -> None:
    """Drop every incremental cursor from the pipeline's state (the ledger stays): a full
    refresh or an open-ended backfill starts from its own initial value."""
    with pipeline.managed_state() as state:
        for source in (state.get("sources") or {}).values():
            for resource in (source.get("resources") or {}).values():
                resource.pop("incremental", None)
            source.get(STATE_KEY, {}).pop("boundary", None)


def watermark_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Boundary:
    """Rows with the newest watermark value (`value`, as text) that have landed so far, and a
    hash of each while there are at most `ingest.checks.boundary.CAP` of them (None beyond)."""

    value: str
    rows: int
    hashes: tuple[str, ...] | None = None


def ledger_resource(key: str, watermark_before: str) -> Any:
    """A dlt resource, extracted together with the job's data, that records task `key` and
    its load id in the source state. It yields nothing, so it makes no table."""

    @dlt.resource(name=LEDGER_RESOURCE, selected=True)
    def record() -> Any:
        load_id = dlt.current.load_package_state()["load_id"]
        state = dlt.current.source_state().setdefault(STATE_KEY, {})
        tasks = dict(state.get("tasks") or {})
        tasks.pop(key, None)
        tasks[key] = {"load_id": load_id, "watermark_before": watermark_before}
        state["tasks"] = dict(list(tasks.items())[-KEEP:])
        state.pop("run_id", None)  # the pre-ledger marker
        state.pop("load_id", None)
        yield from ()

    return record()


def record_boundary(value: Any, rows: int, hashes: list[str] | None = None) -> None:
    """Inside an extraction: store the boundary record (see module doc)."""

    state = dlt.current.source_state().setdefault(STATE_KEY, {})
    state["boundary"] = {"value": watermark_text(value), "rows": rows, "hashes": hashes}


def deletes_checked_at(state: Mapping[str, Any]) -> str | None:
    """When the job last detected deletes (ISO time, `ingest.checks.deletes`), or None."""
    value = _entry_of(state).get("deletes_checked_at")
    return str(value) if value else None


def record_deletes_checked(at: str) -> None:
    """Inside an extraction: the job detected deletes at `at` (committed with the load)."""

    dlt.current.source_state().setdefault(STATE_KEY, {})["deletes_checked_at"] = at
