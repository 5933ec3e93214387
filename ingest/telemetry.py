"""Application Insights telemetry through `azure-monitor-opentelemetry`.

On only when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set; otherwise every function here is a
no-op that imports nothing and sends nothing. What a run emits (names are a contract: the alert
rules in infra/modules/alerts.bicep and the queries in docs/MONITORING.md use them):

- custom event `IngestionTableCompleted` per job (table `customEvents` / `AppEvents`),
  properties `TABLE_EVENT_PROPERTIES`;
- custom event `IngestionRunCompleted` per run, properties `RUN_EVENT_PROPERTIES`;
- metrics `ingestion.rows_loaded` (counter, rows) and `ingestion.duration_s` (histogram,
  seconds) with dimensions source_name, table_name, status (`customMetrics` / `AppMetrics`);
- custom event `IngestionCdcSlot` per CDC job that ran (`CDC_SLOT_EVENT_PROPERTIES`), with
  measurements `retained_bytes` (WAL the job's replication slot keeps on the source) and
  `lag_bytes` (WAL not yet confirmed): the alert rule `cdc-slot-retained` fires above its
  threshold (a forgotten or stuck slot fills the source's disk);
- an exception record per FAILED job (`exceptions` / `AppExceptions`), type
  `IngestionJobFailed`, with run_id and job_id;
- INFO and higher records of the `ingest` loggers as traces (`traces` / `AppTraces`), with
  `run_id` and `job_id` custom dimensions, so one run can be followed in Log Analytics.

Everything sent comes from job results (whose errors the engine has already redacted) or from
log messages; traceback text is never sent (an exception's raw message may hold a value the
engine would have masked). Sampling is fixed at 100 %, and `flush()` pushes everything out
before a short-lived process exits, bounded by `FLUSH_TIMEOUT_S` when the endpoint is down.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from functools import cache
from types import SimpleNamespace
from typing import Any

from ingest.model.result import as_float, as_int, cell_text, check_projection
from ingest.model.run import Run
from ingest.model.summary import RunSummary
from ingest.runtime.logcontext import ContextFilter
from ingest.secrets.redaction import RedactionFilter
from ingest.settings import (
    set_default,
    telemetry_connection_string,
    telemetry_service_name,
    work_dir,
)
from ingest.vocabulary import Status

log = logging.getLogger(__name__)

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
DEFAULT_SERVICE_NAME = "ingest"

TABLE_EVENT = "IngestionTableCompleted"
RUN_EVENT = "IngestionRunCompleted"
JOB_EXCEPTION_TYPE = "IngestionJobFailed"
METRIC_ROWS = "ingestion.rows_loaded"
METRIC_DURATION = "ingestion.duration_s"
METRIC_DIMENSIONS = ("source_name", "table_name", "status")

TABLE_EVENT_PROPERTIES = check_projection(
    (
        "run_id",
        "job_id",
        "source_type",
        "source_name",
        "table_name",
        "load_type",
        "status",
        "rows_loaded",
        "files_written",
        "duration_s",
        "load_id",
        "watermark_after",
        "error",
    ),
    "TABLE_EVENT_PROPERTIES",
)
RUN_EVENT_PROPERTIES = (
    "run_id",
    "trigger",
    "jobs_total",
    "jobs_succeeded",
    "jobs_failed",
    "jobs_skipped",
    "rows_loaded",
    "duration_s",
    "failed_jobs",
    # a scheduled run that waited for another run to end: seconds, and the run ids
    "waited_s",
    "waited_for",
)
CDC_SLOT_EVENT = "IngestionCdcSlot"
CDC_SLOT_EVENT_PROPERTIES = (
    "run_id",
    "job_id",
    "source_name",
    "table_name",
    "slot_name",
    "retained_bytes",
    "lag_bytes",
)
TRIGGERS = ("schedule", "http", "cli")
#: other spellings callers use for the same triggers
TRIGGER_ALIASES = {"timer": "schedule", "scheduled": "schedule", "api": "http"}

#: loggers whose records become App Insights traces (the package and the function app shell)
TRACE_LOGGERS = ("ingest", "function_app")
#: the logger custom events and job exceptions are written to (not propagated: never printed)
EVENT_LOGGER = "ingest.telemetry.events"

#: upper bound for `flush()` (an unreachable endpoint must not hold a run up)
FLUSH_TIMEOUT_S = 20.0
#: per-request network timeouts of the exporter
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0

#: the distro instruments these libraries by default; the framework needs none of them
_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)

_lock = threading.Lock()
_state: dict[str, Any] = {"configured": False, "enabled": False, "instruments": None}


def connection_string(env: Mapping[str, str] | None = None) -> str:
    return telemetry_connection_string(env)


def is_enabled() -> bool:
    """Whether this process sends telemetry (configured and on)."""
    return bool(_state["enabled"])


def service_name() -> str:
    return telemetry_service_name(DEFAULT_SERVICE_NAME)


def _storage_directory() -> str:
    """Offline retry files live under the work dir (per deployment, per test)."""
    return str(work_dir() / "appinsights")


def configure() -> bool:
    """Set up the exporter once per process; returns whether telemetry is on.

    Safe to call from every entry point (CLI start, function app import, `emit_run_telemetry`):
    without a connection string it returns False and imports nothing. A failure to set up is
    logged as a warning and leaves telemetry off: telemetry never stops a run.
    """
    with _lock:
        if _state["configured"]:
            return bool(_state["enabled"])
        _state["configured"] = True
        conn = connection_string()
        if not conn:
            return False
        try:
            _configure(conn)
        except Exception as exc:  # telemetry must never stop the engine
            log.warning("telemetry: Application Insights setup failed, telemetry off: %s", exc)
            return False
        _state["enabled"] = True
        return True


@cache
def _otel() -> SimpleNamespace:
    """OpenTelemetry and the Azure Monitor exporter: the one lazy import of them here."""
    # OpenTelemetry and the Azure Monitor exporter: only when telemetry is on
    import azure.monitor.opentelemetry
    import opentelemetry._logs
    import opentelemetry.instrumentation.logging.handler
    import opentelemetry.metrics
    import opentelemetry.sdk.resources
    import opentelemetry.trace

    return SimpleNamespace(
        monitor=azure.monitor.opentelemetry,
        logs=opentelemetry._logs,
        # the logging handler the distro itself uses (1.8.x)
        logging_handler=opentelemetry.instrumentation.logging.handler,
        metrics=opentelemetry.metrics,
        resources=opentelemetry.sdk.resources,
        trace=opentelemetry.trace,
    )


def _configure(conn: str) -> None:
    # the SDK's own item counters would land in the customer's customMetrics: off unless asked
    set_default("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
    otel = _otel()
    otel.monitor.configure_azure_monitor(
        connection_string=conn,
        # cloud_RoleName: the function app's name on Azure, else OTEL_SERVICE_NAME or "ingest"
        resource=otel.resources.Resource.create({"service.name": service_name()}),
        logger_name=EVENT_LOGGER,
        # Every event matters (a night has a few hundred): never sample.
        sampling_ratio=1.0,
        enable_trace_based_sampling_for_logs=False,
        instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
        enable_live_metrics=False,
        enable_performance_counters=False,
        storage_directory=_storage_directory(),
        # exporter transport: bounded network waits, one quick retry; what still fails is kept
        # in offline storage and retried by the next export of a long-lived process
        timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retry_total=1,
        retry_backoff_factor=0.5,
    )
    events = logging.getLogger(EVENT_LOGGER)
    events.setLevel(logging.INFO)
    events.propagate = False  # events are telemetry, not console lines

    provider = otel.logs.get_logger_provider()
    redaction_filter = RedactionFilter()  # masks any resolved secret value in a message
    for name in TRACE_LOGGERS:
        logger = logging.getLogger(name)
        if any(getattr(h, "_ingest_telemetry", False) for h in logger.handlers):
            continue
        handler = _trace_handler(provider)
        handler.addFilter(ContextFilter())
        handler.addFilter(redaction_filter)
        logger.addHandler(handler)

    meter = otel.metrics.get_meter("ingest.telemetry")
    _state["instruments"] = (
        meter.create_counter(METRIC_ROWS, unit="{row}", description="Rows loaded per table"),
        meter.create_histogram(
            METRIC_DURATION, unit="s", description="Seconds per table load (job duration)"
        ),
    )


def _trace_handler(provider: Any) -> logging.Handler:
    """The OpenTelemetry logging handler, INFO and up, without traceback text.

    An exception's own message can hold what the engine masks in its results (a DSN, a
    password echoed by a driver), so `exc_info`/`stack_info` are dropped from the copy sent;
    the console handler still gets the original record.
    """
    logging_handler: Any = _otel().logging_handler.LoggingHandler

    class TraceHandler(logging_handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info or record.exc_text or record.stack_info:
                record = logging.makeLogRecord(record.__dict__)
                record.exc_info = None
                record.exc_text = None
                record.stack_info = None
            super().emit(record)

    handler = TraceHandler(level=logging.INFO, logger_provider=provider)
    handler._ingest_telemetry = True
    return handler


# ------------------------------------------------------------------------------------------
# what a run emits


def table_event_properties(result: Mapping[str, Any]) -> dict[str, str]:
    return {name: cell_text(result.get(name)) for name in TABLE_EVENT_PROPERTIES}


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def run_duration_s(run: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> float:
    """The run's wall-clock seconds: `duration_s` if given, else from `started_at` to now,
    else from the first job's start to the last job's finish."""
    if run.get("duration_s") is not None:
        return round(as_float(run["duration_s"]), 3)
    started = _parse_time(run.get("started_at"))
    if started is not None:
        return round(max((dt.datetime.now(dt.UTC) - started).total_seconds(), 0.0), 3)
    results = list(results)
    starts = [t for t in (_parse_time(r.get("started_at")) for r in results) if t]
    ends = [t for t in (_parse_time(r.get("finished_at")) for r in results) if t]
    if starts and ends:
        return round(max((max(ends) - min(starts)).total_seconds(), 0.0), 3)
    return round(sum(as_float(r.get("duration_s")) for r in results), 3)


def run_event_properties(
    run: Mapping[str, Any], results: list[Mapping[str, Any]], summary: Mapping[str, Any]
) -> dict[str, str]:
    trigger = str(run.get("trigger") or "cli").strip().lower()
    trigger = TRIGGER_ALIASES.get(trigger, trigger)
    values = {
        "run_id": run.get("run_id") or summary.get("run_id"),
        "trigger": trigger if trigger in TRIGGERS else trigger[:32],
        "jobs_total": summary.get("jobs_total"),
        "jobs_succeeded": summary.get("jobs_succeeded"),
        "jobs_failed": summary.get("jobs_failed"),
        "jobs_skipped": summary.get("jobs_skipped"),
        "rows_loaded": summary.get("rows_loaded"),
        "duration_s": run_duration_s(run, results),
        "failed_jobs": list(summary.get("failed_jobs") or []),
        "waited_s": run.get("waited_s"),
        "waited_for": list(run.get("waited_for") or []),
    }
    return {name: cell_text(values[name]) for name in RUN_EVENT_PROPERTIES}


def cdc_slot_event_properties(result: Mapping[str, Any]) -> dict[str, str] | None:
    """The slot event of a CDC job's result (None: not a CDC job, or its slot was not read)."""
    if not result.get("cdc_slot"):
        return None
    values = {**result, "slot_name": result.get("cdc_slot")}
    values["retained_bytes"] = result.get("cdc_retained_bytes")
    values["lag_bytes"] = result.get("cdc_lag_bytes")
    return {name: cell_text(values.get(name)) for name in CDC_SLOT_EVENT_PROPERTIES}


def _measurements(**values: float) -> str:
    return json.dumps(values)


def emit_run_telemetry(
    run: Run,
    summary: RunSummary | None = None,
    *,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
) -> bool:
    """Send a finished run's telemetry and flush it; returns whether anything was sent.

    `run` is the `write_audit` input, `summary` its output (None: counted here). The events
    are projections of their JSON (`Run.to_dict`, `RunSummary.to_dict`). A no-op without a
    connection string.
    """
    if not configure():
        return False

    results: list[Mapping[str, Any]] = [result.to_dict() for result in run.results]
    counts = (summary or RunSummary.of(run.run_id, run.results)).to_dict()
    run_json = run.to_dict()
    events = logging.getLogger(EVENT_LOGGER)
    rows_counter, duration_histogram = _state["instruments"]
    for result in results:
        props = table_event_properties(result)
        rows, seconds = as_int(result.get("rows_loaded")), as_float(result.get("duration_s"))
        events.info(
            TABLE_EVENT,
            extra={
                "microsoft.custom_event.name": TABLE_EVENT,
                "microsoft.custom_measurements": _measurements(
                    rows_loaded=rows,
                    files_written=as_int(result.get("files_written")),
                    duration_s=seconds,
                ),
                **props,
            },
        )
        slot = cdc_slot_event_properties(result)
        if slot is not None:
            events.info(
                CDC_SLOT_EVENT,
                extra={
                    "microsoft.custom_event.name": CDC_SLOT_EVENT,
                    "microsoft.custom_measurements": _measurements(
                        retained_bytes=as_int(slot["retained_bytes"]),
                        lag_bytes=as_int(slot["lag_bytes"]),
                    ),
                    **slot,
                },
            )
        dimensions = {name: props[name] for name in METRIC_DIMENSIONS}
        rows_counter.add(rows, dimensions)
        duration_histogram.record(seconds, dimensions)
        if props["status"] == Status.FAILED:
            events.error(
                "job %s (%s.%s) failed: %s",
                props["job_id"],
                props["source_name"],
                props["table_name"],
                props["error"] or "no error message",
                extra={
                    "exception.type": JOB_EXCEPTION_TYPE,
                    "exception.message": props["error"] or "no error message",
                    **{k: props[k] for k in ("run_id", "job_id", "source_type", "source_name")},
                    "table_name": props["table_name"],
                    "load_type": props["load_type"],
                    "status": Status.FAILED,
                },
            )
    run_props = run_event_properties(run_json, list(results), counts)
    events.info(
        RUN_EVENT,
        extra={
            "microsoft.custom_event.name": RUN_EVENT,
            "microsoft.custom_measurements": _measurements(
                jobs_total=as_int(counts.get("jobs_total")),
                jobs_failed=as_int(counts.get("jobs_failed")),
                rows_loaded=as_int(counts.get("rows_loaded")),
                duration_s=as_float(run_props["duration_s"]),
            ),
            **run_props,
        },
    )
    flushed = flush(flush_timeout_s)
    if not flushed:
        log.warning(
            "telemetry: Application Insights did not take the run's telemetry within %.0f s; "
            "it is kept for retry, the run is not affected",
            flush_timeout_s,
        )
    return True


def flush(timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
    """Export what is buffered (logs/events first, then metrics, then spans), in at most
    `timeout_s` seconds; returns False if that bound was hit or an export failed."""
    if not _state["enabled"]:
        return True
    otel = _otel()
    outcome = {"ok": True}

    def work() -> None:
        deadline = time.monotonic() + timeout_s
        for provider in (
            otel.logs.get_logger_provider(),
            otel.metrics.get_meter_provider(),
            otel.trace.get_tracer_provider(),
        ):
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is None:
                continue
            remaining_ms = max((deadline - time.monotonic()) * 1000, 1)
            try:
                if force_flush(timeout_millis=remaining_ms) is False:
                    outcome["ok"] = False
            except Exception as exc:  # a flush failure is a telemetry problem only
                outcome["ok"] = False
                log.debug("telemetry: flush of %s failed: %s", type(provider).__name__, exc)

    worker = threading.Thread(target=work, name="ingest-telemetry-flush", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return outcome["ok"] and not worker.is_alive()
