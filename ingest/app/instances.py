"""Durable queries about runs: which are active, and which run holds the on-demand instance.

Used by the HTTP starter (refuse a second run), the timer (log what the night waits for) and
the `find_active_runs` activity (a waiting scheduled run's probe). Works on any object with
the `DurableOrchestrationClient` methods `get_status` and `get_status_by`.
"""

from __future__ import annotations

import json
from typing import Any

from ingest.app import MANUAL_INSTANCE, ORCHESTRATOR

ACTIVE_STATUSES = ("Pending", "Running", "Suspended")


def status_text(status: Any) -> str:
    return str(getattr(status.runtime_status, "value", status.runtime_status))


def run_id_of(status: Any) -> str | None:
    """The run id an `ingest_run` instance holds (its input), if its input was fetched."""
    data = getattr(status, "input_", None)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    return data.get("run_id") if isinstance(data, dict) else None


async def active_runs(client: Any) -> list[Any]:
    """`ingest_run` instances that are Pending, Running or Suspended."""
    # the Durable SDK: only when the client is queried
    from azure.durable_functions import OrchestrationRuntimeStatus

    wanted = [OrchestrationRuntimeStatus(s) for s in ACTIVE_STATUSES]
    statuses = await client.get_status_by(runtime_status=wanted)
    return [
        s
        for s in statuses
        if s and (s.name in (None, ORCHESTRATOR)) and status_text(s) in ACTIVE_STATUSES
    ]


async def instance(client: Any, instance_id: str) -> Any | None:
    status = await client.get_status(instance_id)
    return status if status else None


async def manual_slot(client: Any) -> tuple[Any, str | None] | None:
    """The on-demand instance and the run id it holds, if it is active."""
    status = await client.get_status(MANUAL_INSTANCE, show_input=True)
    if not status or status_text(status) not in ACTIVE_STATUSES:
        return None
    return status, run_id_of(status)


async def active_run_ids(
    client: Any, exclude: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Run ids of the active runs (the on-demand instance's run id read from its input)."""
    ids = []
    for status in await active_runs(client):
        if status.instance_id in exclude:
            continue
        if status.instance_id == MANUAL_INSTANCE:
            slot = await manual_slot(client)
            ids.append((slot[1] if slot else None) or status.instance_id)
        else:
            ids.append(status.instance_id)
    return ids
