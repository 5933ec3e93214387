"""Schema drift: the job's source columns against its previous schema version in the lake.

The previous version is the newest dlt schema the job's pipeline stored in the lake
(`<source>/_dlt_version/<schema>__<time>__<hash>.jsonl`). It holds the lake columns with their
dlt types and, as the table hint `x-ingest-source-columns`, the source columns the previous
load saw (a column dropped in the source stays in the lake schema forever, so "removed" is
judged against what the source had last time, and reported once).

Policies (config column `schema_policy`):
- `evolve` (default): load, report the changes;
- `freeze`: any change fails the job with the diff, before anything is extracted or lands
  (dlt's `freeze` contract backs this up for columns no reflection declared);
- `discard_columns`: new columns are dropped (dlt contract `columns: discard_value`), known
  columns load; the dropped ones are reported as `discarded`.

Summary format (audit `schema_changes`): `added: discount (decimal); removed: note;
type changed: qty bigint->text`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.checks import events as trust_telemetry
from ingest.errors import JobError
from ingest.identifiers import lake_name
from ingest.lake.layout import SEPARATOR, VERSION_DIR, parse_version_name
from ingest.lake.loads import names_with_prefix
from ingest.vocabulary import STORED_COLUMNS, SchemaPolicy

if TYPE_CHECKING:
    from ingest.config import JobConfig
    from ingest.lake.destination import Destination

log = logging.getLogger(__name__)

SOURCE_COLUMNS_HINT = "x-ingest-source-columns"
SCHEMA_CHANGED_EVENT = "IngestionSchemaChanged"


# ------------------------------------------------------------------------------------------
# stored schemas


def stored_schema(dest: Destination, dataset: str, schema_name: str, fs: Any = None) -> dict | None:
    """The newest dlt schema (as a dict) stored in the lake under `schema_name`, or None."""
    folder = dest.path(dataset, VERSION_DIR)
    newest: tuple[float, str] | None = None
    for name in names_with_prefix(dest, folder, schema_name + SEPARATOR):
        version = parse_version_name(name)
        if version is None or version[0] != schema_name:
            continue
        stamp = version[1]
        if newest is None or stamp > newest[0]:
            newest = (stamp, name)
    if newest is None:
        return None
    fs = fs or dest.filesystem()
    with fs.open(f"{folder}/{newest[1]}", "r", encoding="utf-8") as handle:
        info = json.loads(handle.read())
    schema = info.get("schema")
    return json.loads(schema) if isinstance(schema, str) else schema


def table_schema(schema: Mapping[str, Any] | None, table: str) -> Mapping[str, Any] | None:
    if not schema:
        return None
    return (schema.get("tables") or {}).get(table)


def data_columns(table: Mapping[str, Any] | None) -> dict[str, str]:
    """name -> dlt data type of the table's columns, without dlt's own `_dlt_*` columns."""
    if not table:
        return {}
    return {
        name: str(col.get("data_type") or "")
        for name, col in (table.get("columns") or {}).items()
        if not name.startswith("_dlt") and name not in STORED_COLUMNS
    }


def _normalize(name: str) -> str:

    return lake_name(name)


# ------------------------------------------------------------------------------------------
# diff


@dataclass
class Diff:
    added: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    discarded: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.discarded)

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append("added: " + ", ".join(f"{n} ({t})" for n, t in self.added.items()))
        if self.discarded:
            parts.append("discarded: " + ", ".join(f"{n} ({t})" for n, t in self.discarded.items()))
        if self.removed:
            parts.append("removed: " + ", ".join(self.removed))
        if self.changed:
            parts.append(
                "type changed: " + ", ".join(f"{n} {a}->{b}" for n, (a, b) in self.changed.items())
            )
        return "; ".join(parts)


def diff(
    lake_columns: Mapping[str, str],
    previous_source: list[str] | None,
    current: Mapping[str, str],
) -> Diff:
    """Changes from the stored schema to the `current` source columns (name -> dlt type)."""
    result = Diff()
    if not lake_columns:
        return result  # first load: nothing to compare with
    for name, data_type in current.items():
        if name not in lake_columns:
            result.added[name] = data_type
        elif data_type and lake_columns[name] and data_type != lake_columns[name]:
            result.changed[name] = (lake_columns[name], data_type)
    if current:
        before = previous_source if previous_source is not None else list(lake_columns)
        result.removed = [name for name in before if name not in current]
    return result


def declared_columns(resource: Any) -> dict[str, str]:
    """Columns the resource declares (reflected from the source table), normalized names."""
    try:
        columns = resource.columns or {}
    except Exception:  # a resource without static hints (callable hints)
        return {}
    if not isinstance(columns, Mapping):
        return {}
    return {
        _normalize(str(col.get("name") or name)): str(col.get("data_type") or "")
        for name, col in columns.items()
        if not str(name).startswith("_dlt") and str(name) not in STORED_COLUMNS
    }


class DriftCheck:
    """Compares, applies the policy, and reports the changes of one job's load."""

    def __init__(self, job: JobConfig, dest: Destination, dataset: str, table: str):
        self.job = job
        self.table = table
        self.previous = table_schema(stored_schema(dest, dataset, job.schema_name_in_lake), table)
        self.lake_columns = data_columns(self.previous)
        hint = (self.previous or {}).get(SOURCE_COLUMNS_HINT)
        self.previous_source = list(hint) if isinstance(hint, list) else None
        self.before_run = Diff()
        self.declared: dict[str, str] = {}

    def prepare(self, resource: Any) -> None:
        """Before extraction: diff the declared columns, apply the policy to the resource."""
        self.declared = declared_columns(resource)
        self.before_run = diff(self.lake_columns, self.previous_source, self.declared)
        policy = self.job.schema_policy
        if policy == SchemaPolicy.FREEZE:
            if self.before_run:
                raise JobError(
                    f"schema_policy freeze: source table {self.job.table_name} changed "
                    f"({self.before_run.summary()}); nothing was loaded. Set schema_policy "
                    "to evolve (or discard_columns) to accept the change"
                )
            if self.previous is not None:
                resource.apply_hints(schema_contract={"columns": "freeze", "data_type": "freeze"})
        elif policy == SchemaPolicy.DISCARD_COLUMNS and self.previous is not None:
            resource.apply_hints(schema_contract={"columns": "discard_value"})
        if self.declared:
            resource.apply_hints(
                additional_table_hints={SOURCE_COLUMNS_HINT: sorted(self.declared)}
            )

    def finish(self, pipeline: Any) -> Diff:
        """After the load: what changed, taken from the schema dlt now holds."""
        if self.previous is None:
            return Diff()
        try:
            now = data_columns(pipeline.default_schema.get_table(self.table))
        except Exception:
            now = {}
        result = Diff(removed=list(self.before_run.removed))
        for name, data_type in now.items():
            if name not in self.lake_columns:
                result.added[name] = data_type
            elif data_type and self.lake_columns[name] and data_type != self.lake_columns[name]:
                result.changed[name] = (self.lake_columns[name], data_type)
        for name, data_type in self.before_run.added.items():
            if name not in now:
                result.discarded[name] = data_type
        return result


def emit_schema_changed(result: Mapping[str, Any], changes: Diff) -> None:
    """Telemetry event `IngestionSchemaChanged` (no-op without Application Insights)."""

    trust_telemetry.emit_event(
        SCHEMA_CHANGED_EVENT,
        result,
        {
            "schema_changes": changes.summary(),
            "schema_policy": str(result.get("schema_policy") or ""),
            "columns_added": ",".join(changes.added),
            "columns_removed": ",".join(changes.removed),
            "columns_type_changed": ",".join(changes.changed),
            "columns_discarded": ",".join(changes.discarded),
        },
    )
