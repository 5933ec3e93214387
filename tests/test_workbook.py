"""The Azure Monitor workbook (infra/workbooks/ingestion.workbook.json, deployed by
infra/modules/workbook.bicep): every KQL query in it parses, and every event name, metric name
and customDimensions property it uses is one the code emits.

What the code emits is not a hand-copied list: the real emitters run (`emit_run_telemetry`
for a run with a SUCCESS and a FAILED table, `emit_reconcile_mismatch`, `emit_schema_changed`)
with the exporter replaced by a recorder on the event logger, and the names are read off the
records they produce (the exporter sends a record's extras as the event's customDimensions:
tests/test_telemetry.py checks that against the real exporter). The Bicep wiring and checkov
are in tests/test_infra.py.
"""

from __future__ import annotations

import ast
import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ingest import telemetry
from ingest.checks import drift
from ingest.checks import events as trust_events
from ingest.model.run import Run
from tests import kql

ROOT = Path(__file__).resolve().parents[1]
WORKBOOK = ROOT / "infra" / "workbooks" / "ingestion.workbook.json"
#: the views the issue asks for: each is an item (by name) of the workbook
VIEWS = {
    "run-outcomes",
    "runs",
    "failures-by-table",
    "rows-per-day",
    "run-durations",
    "slowest-tables",
    "reconcile-mismatches",
    "schema-changes",
}
_STANDARD = set(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {
    "message",
    "asctime",
}


@dataclass
class Emitted:
    #: event name -> customDimensions it carries
    events: dict[str, set[str]] = field(default_factory=dict)
    #: event name -> customMeasurements
    measurements: dict[str, set[str]] = field(default_factory=dict)
    #: metric name -> dimensions
    metrics: dict[str, set[str]] = field(default_factory=dict)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Instrument:
    def __init__(self) -> None:
        self.dimensions: set[str] = set()

    def add(self, value: float, attributes: dict[str, str]) -> None:
        self.dimensions |= set(attributes)

    record = add


def _result(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "job_id": "001",
        "source_type": "postgresql",
        "source_name": "erp",
        "table_name": "orders",
        "load_type": "INCREMENTAL",
        "status": status,
        "rows_loaded": 10,
        "files_written": 1,
        "duration_s": 1.5,
        "load_id": "1.2",
        "watermark_after": "2026-01-01",
        "error": "boom" if status == "FAILED" else "",
        "source_rows": 12,
        "reconciled": "MISMATCH",
        "reconcile_note": "2 rows missing",
        **extra,
    }


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    """Run the real emitters, record what they send."""
    monkeypatch = pytest.MonkeyPatch()
    recorder = _Recorder()
    logger = logging.getLogger(telemetry.EVENT_LOGGER)
    rows, durations = _Instrument(), _Instrument()
    try:
        monkeypatch.setattr(telemetry, "configure", lambda: True)
        monkeypatch.setattr(telemetry, "flush", lambda timeout_s=0: True)
        monkeypatch.setitem(telemetry._state, "instruments", (rows, durations))
        monkeypatch.setattr(logger, "propagate", False)
        monkeypatch.setattr(logger, "level", logging.DEBUG)
        logger.addHandler(recorder)
        run = {"run_id": "r1", "trigger": "schedule", "started_at": "2026-01-01T06:00:00+00:00"}
        cdc = _result(
            "SUCCESS", load_type="CDC", cdc_slot="s1", cdc_retained_bytes=10, cdc_lag_bytes=2
        )
        results = [_result("SUCCESS"), _result("FAILED"), cdc]
        run_json = {**run, "destination": "file:///lake", "results": results}
        telemetry.emit_run_telemetry(Run.from_dict(run_json))
        assert trust_events.emit_reconcile_mismatch(_result("WARN"))
        changes = drift.Diff(added={"a": "text"}, removed=["b"], changed={"c": ("bigint", "text")})
        drift.emit_schema_changed(_result("SUCCESS", schema_policy="evolve"), changes)
    finally:
        logger.removeHandler(recorder)
        monkeypatch.undo()
    out = Emitted()
    for record in recorder.records:
        extras = record.__dict__
        name = extras.get("microsoft.custom_event.name")
        if not name:
            continue  # exception records (IngestionJobFailed): the workbook does not use them
        props = {k for k in extras if k not in _STANDARD and not k.startswith("microsoft.")}
        out.events.setdefault(name, set()).update(props)
        measured = json.loads(extras.get("microsoft.custom_measurements") or "{}")
        out.measurements.setdefault(name, set()).update(measured)
    # the instruments are created with these names in telemetry._configure
    out.metrics[telemetry.METRIC_ROWS] = rows.dimensions
    out.metrics[telemetry.METRIC_DURATION] = durations.dimensions
    return out


def workbook() -> dict[str, Any]:
    return json.loads(WORKBOOK.read_text(encoding="utf-8"))


def items(node: Any) -> list[dict[str, Any]]:
    """Every item of the workbook, groups (type 12) included, depth first."""
    found = []
    for item in node.get("items", []):
        found.append(item)
        if item.get("type") == 12:
            found.extend(items(item.get("content", {})))
    return found


def queries(book: dict[str, Any]) -> dict[str, str]:
    """item name -> KQL, for every query item and every parameter with a query."""
    found = {}
    for item in items(book):
        content = item.get("content", {})
        if item.get("type") == 3:
            found[item["name"]] = content["query"]
        for parameter in content.get("parameters", []) if item.get("type") == 9 else []:
            if parameter.get("query"):
                found[f"{item['name']}.{parameter['name']}"] = parameter["query"]
    return found


def check_query(text: str, emitted: Emitted) -> list[str]:
    """What in one query is not emitted by the code (or cannot be read)."""
    try:
        query = kql.parse(text)
    except kql.KqlError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    if not query.tables:
        problems.append("reads no Application Insights table")
    allowed: set[str] = set()
    measurements: set[str] = set()
    for table in sorted(query.tables):
        if table == "customEvents":
            known = emitted.events
        elif table == "customMetrics":
            known = emitted.metrics
        else:
            problems.append(f"reads {table}, which the workbook has no business with")
            continue
        named = query.names & set(known)
        unknown = query.names - set(emitted.events) - set(emitted.metrics)
        problems += [f"{table}: no code emits {name!r}" for name in sorted(unknown)]
        if not named and not unknown:
            problems.append(f"{table} without a name filter (name == ...)")
        for name in named:
            allowed |= known[name]
            measurements |= emitted.measurements.get(name, set())
    for prop in sorted(query.properties.get("customDimensions", set()) - allowed):
        problems.append(f"customDimensions.{prop} is not sent with {sorted(query.names)}")
    for prop in sorted(query.properties.get("customMeasurements", set()) - measurements):
        problems.append(f"customMeasurements.{prop} is not sent with {sorted(query.names)}")
    return problems


def check_workbook(book: dict[str, Any], emitted: Emitted) -> list[str]:
    problems = []
    if book.get("version") != "Notebook/1.0":
        problems.append("not a workbook (version Notebook/1.0)")
    names = [item.get("name") for item in items(book)]
    if len(names) != len(set(names)):
        problems.append("item names are not unique")
    for name, text in queries(book).items():
        problems += [f"{name}: {p}" for p in check_query(text, emitted)]
    for item in items(book):
        content = item.get("content", {})
        if item.get("type") == 3 and (
            content.get("resourceType") != "microsoft.insights/components"
            or content.get("queryType") != 0
            or content.get("timeContextFromParameter") != "TimeRange"
        ):
            problems.append(f"{item['name']}: must query the component over the TimeRange")
    missing = VIEWS - set(queries(book))
    if missing:
        problems.append(f"views missing: {sorted(missing)}")
    return problems


# ------------------------------------------------------------------------------------------


def test_the_emitted_names_come_from_the_code(emitted):
    assert set(emitted.events) == {
        telemetry.TABLE_EVENT,
        telemetry.RUN_EVENT,
        trust_events.RECONCILE_MISMATCH_EVENT,
        drift.SCHEMA_CHANGED_EVENT,
        telemetry.CDC_SLOT_EVENT,
    }
    assert emitted.events[telemetry.TABLE_EVENT] == set(telemetry.TABLE_EVENT_PROPERTIES)
    assert emitted.events[telemetry.CDC_SLOT_EVENT] == set(telemetry.CDC_SLOT_EVENT_PROPERTIES)
    assert emitted.events[telemetry.RUN_EVENT] == set(telemetry.RUN_EVENT_PROPERTIES)
    assert {"source_rows", "reconcile_note"} <= emitted.events["IngestionReconcileMismatch"]
    assert {"schema_changes", "columns_added"} <= emitted.events["IngestionSchemaChanged"]
    assert emitted.metrics == {
        telemetry.METRIC_ROWS: set(telemetry.METRIC_DIMENSIONS),
        telemetry.METRIC_DURATION: set(telemetry.METRIC_DIMENSIONS),
    }


def test_every_emitter_of_custom_events_is_covered():
    """The fixture runs every function that sends a custom event; a new emitter elsewhere in
    ingest/ must be added to it (or its names would go unchecked)."""
    senders = set()
    for path in sorted((ROOT / "ingest").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == "microsoft.custom_event.name":
                senders.add(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "emit_event":
                senders.add(str(path.relative_to(ROOT)))
    assert senders == {"ingest/telemetry.py", "ingest/checks/events.py", "ingest/checks/drift.py"}


def test_every_workbook_query_names_only_what_the_code_emits(emitted):
    book = workbook()
    assert len(queries(book)) >= len(VIEWS)
    assert check_workbook(book, emitted) == []


def test_the_cdc_slot_lag_item_queries_the_slot_event(emitted):
    (item,) = [i for i in items(workbook()) if i.get("name") == "cdc-slot-lag"]
    assert item["type"] == 3  # a query
    text = item["content"]["query"]
    assert f'name == "{telemetry.CDC_SLOT_EVENT}"' in text and "retained_bytes" in text
    assert check_query(text, emitted) == []


def _replace_in(book: dict[str, Any], item: str, old: str, new: str) -> dict[str, Any]:
    book = copy.deepcopy(book)
    for candidate in items(book):
        if candidate.get("name") == item:
            assert old in candidate["content"]["query"]
            candidate["content"]["query"] = candidate["content"]["query"].replace(old, new)
    return book


MUTATIONS = {
    "unknown event": ("runs", '"IngestionRunCompleted"', '"IngestionRunFinished"'),
    "property of another event": (
        "runs",
        "customDimensions.failed_jobs",
        "customDimensions.schema_changes",
    ),
    "unknown property": ("schema-changes", "columns_added", "columns_appended"),
    "unknown metric": ("rows-per-day", '"ingestion.rows_loaded"', '"ingestion.rows"'),
    "unknown metric dimension": (
        "rows-per-day",
        "customDimensions.source_name",
        "customDimensions.source_type",
    ),
    "unbalanced bracket": ("runs", "toint(customDimensions.jobs_total)", "toint(x"),
    "empty pipe": ("runs", "| order by", "| | order by"),
    "unterminated string": ("runs", '"IngestionRunCompleted"', '"IngestionRunCompleted'),
    "no name filter": ("runs", '| where name == "IngestionRunCompleted"\n', ""),
    "another table": ("runs", "customEvents", "requests"),
    "unknown operator": ("runs", "| order by", "| orderby"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_check_fails_on_a_broken_query(mutation, emitted):
    item, old, new = MUTATIONS[mutation]
    problems = check_workbook(_replace_in(workbook(), item, old, new), emitted)
    assert problems, mutation
    assert all(p.startswith(f"{item}: ") for p in problems), problems


def test_the_reader_reads_the_forms_the_queries_use():
    query = kql.parse(
        "let x = customEvents | where name in ('A', \"B\");\n"
        '// a comment with "quotes" and customDimensions.fake\n'
        "x | extend v = tostring(customDimensions['p one']), w = customMeasurements.m\n"
        '| where timestamp > ago(1d) and tostring(customDimensions.q) =~ @"C:\\path"\n'
        "| summarize count() by bin(timestamp, 1h) | mv-expand v | render timechart"
    )
    assert query.tables == {"customEvents"} and query.names == {"A", "B"}
    assert query.properties == {"customDimensions": {"p one", "q"}, "customMeasurements": {"m"}}
    for broken in ("customEvents | where (a", "customEvents |", "let x = 1;", "a ^ b", ""):
        with pytest.raises(kql.KqlError):
            kql.parse(broken)
