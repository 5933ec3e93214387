"""Telemetry of the data-trust checks, through `ingest.telemetry` (Application Insights).

- custom event `IngestionSchemaChanged` when a job's source columns changed;
- custom event `IngestionReconcileMismatch` when a job's row counts disagree.

Both carry the job's identity (run_id, job_id, source, table, load type, status) plus their
own properties. A no-op without `APPLICATIONINSIGHTS_CONNECTION_STRING`; never raises.
Events are sent from the process that ran the job and flushed right away (they are rare),
so a short-lived CLI worker process does not lose them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ingest import telemetry

log = logging.getLogger(__name__)

RECONCILE_MISMATCH_EVENT = "IngestionReconcileMismatch"
IDENTITY = ("run_id", "job_id", "source_type", "source_name", "table_name", "load_type", "status")
FLUSH_TIMEOUT_S = 5.0


def emit_event(name: str, result: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """Send custom event `name`; returns whether it was sent."""
    try:
        if not telemetry.configure():
            return False
        props = {key: str(result.get(key) or "") for key in IDENTITY}
        props.update(
            {key: "" if value is None else str(value) for key, value in properties.items()}
        )
        logging.getLogger(telemetry.EVENT_LOGGER).info(
            name, extra={"microsoft.custom_event.name": name, **props}
        )
        telemetry.flush(FLUSH_TIMEOUT_S)
        return True
    except Exception as exc:  # telemetry never fails a job
        log.warning("telemetry: event %s not sent: %s", name, exc)
        return False


def emit_reconcile_mismatch(result: Mapping[str, Any]) -> bool:
    return emit_event(
        RECONCILE_MISMATCH_EVENT,
        result,
        {
            "source_rows": result.get("source_rows"),
            "rows_loaded": result.get("rows_loaded"),
            "reconciled": result.get("reconciled"),
            "reconcile_note": result.get("reconcile_note"),
        },
    )
