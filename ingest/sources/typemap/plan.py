"""A table's read plan: for every reflected column, what the SELECT reads, what lands, and how
its values become Arrow; or why the column is refused.

Decided from the reflected SQLAlchemy types only, so a job's lake schema never depends on the
data. Both read paths use one plan: dlt's pyarrow backend (`from_rows`) and the PostgreSQL
fast path (`from_arrow`) run the same SELECT (`select`) and give the same Arrow table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from ingest.errors import JobError
from ingest.sources.reserved import renames
from ingest.sources.typemap.convert import Converter, Refused
from ingest.sources.typemap.lake import LakeType

#: SQL around a column (its reflected Column in, a column expression out); None: as it is
Reader = Callable[[Any], Any]


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is read and what lands."""

    name: str
    #: the source type as the messages and the README name it (`jsonb`, `numeric(50,10)`)
    source_type: str
    lake: LakeType
    converter: Converter
    #: the SELECT's expression for the column (None: the column as the driver returns it)
    reader: Reader | None = None
    #: ConnectorX reads the SELECT's expression exactly (PostgreSQL fast path)
    fast: bool = True
    #: the value lands as the source's text: text order is not the source's order, so the
    #: column cannot be a watermark
    as_text: bool = False
    nullable: bool = True
    #: the column's name in the source, when it lands under another one
    #: (`ingest.sources.reserved`); None: the same name
    source: str | None = None

    @property
    def source_name(self) -> str:
        return self.source or self.name

    def expression(self, column: Any) -> Any:
        if self.reader is None:
            # no SQLAlchemy result processing: the converter takes the driver's own value
            return sa.type_coerce(column, sa.types.NullType()).label(self.name)
        return self.reader(column).label(self.name)


@dataclass(frozen=True)
class Refusal:
    """A column no lake type holds exactly, and what to do about it."""

    name: str
    source_type: str
    reason: str
    remedy: str = "cast it in a source view to a type that is listed, or leave it out"


@dataclass(frozen=True)
class TablePlan:
    """The plan of one job's table (see module doc)."""

    job_id: str
    table: str
    source_type: str
    columns: tuple[ColumnPlan, ...]
    #: per source type: what the read's database session needs (PostgreSQL: UTC, casters)
    session: Callable[[Any], AbstractContextManager[Any]] | None = field(
        default=None, compare=False
    )

    # --- the lake side -------------------------------------------------------------------

    @cached_property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.lake.arrow, nullable=c.nullable) for c in self.columns]
        )

    def hints(self) -> dict[str, dict[str, Any]]:
        """dlt column hints: the type that actually lands, for every column."""
        return {c.name: c.lake.hint(c.name, c.nullable) for c in self.columns}

    def column(self, name: str) -> ColumnPlan | None:
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        return None

    # --- the read ------------------------------------------------------------------------

    def select(self, query: Any, table: Any) -> Any:
        """dlt's query with our SELECT list: the same FROM, WHERE, ORDER BY and LIMIT."""
        expressions = [
            c.expression(table.c[c.name] if c.source is None else sa.column(c.source))
            for c in self.columns
        ]
        return query.with_only_columns(*expressions, maintain_column_froms=True)

    def fast_path_blocker(self) -> str | None:
        for column in self.columns:
            if not column.fast:
                return (
                    f"column {column.name} ({column.source_type}) is read by dlt's pyarrow backend"
                )
        return None

    def open_session(self, connection: Any) -> AbstractContextManager[Any]:
        return self.session(connection) if self.session else nullcontext()

    def from_rows(self, rows: Sequence[Sequence[Any]]) -> pa.Table:
        """A batch of driver rows (tuples in SELECT order) as the lake's Arrow table."""
        if rows:
            values: list[Sequence[Any]] = list(zip(*rows, strict=True))
        else:
            values = [() for _ in self.columns]
        arrays = [
            self._convert(c, functools.partial(c.converter.from_values, v))
            for c, v in zip(self.columns, values, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def from_arrow(self, batch: Any) -> pa.Table:
        """A ConnectorX batch (columns in SELECT order) as the lake's Arrow table."""
        arrays = [
            self._convert(c, functools.partial(c.converter.from_arrow, batch.column(i)))
            for i, c in enumerate(self.columns)
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _convert(self, column: ColumnPlan, convert: Callable[[], Any]) -> Any:
        try:
            return convert()
        except Refused as refused:
            raise self.refused_value(column, refused.reason) from None

    def refused_value(self, column: ColumnPlan, reason: str) -> JobError:
        return JobError(
            f"job {self.job_id}: column {column.name} ({self.source_type} {column.source_type}) "
            f"of table {self.table} {reason}, which its lake type {column.lake.describe()} "
            "cannot hold exactly; nothing was loaded. Fix the value in the source, or read the "
            "table through a source view that filters or casts it (README, Sources: types)"
        )

    @property
    def renamed(self) -> dict[str, str]:
        """source name -> lake name of the columns that land renamed (`ingest.sources.reserved`)."""
        return {c.source: c.name for c in self.columns if c.source is not None}

    def column_at(self, index: int) -> ColumnPlan | None:
        return self.columns[index] if 0 <= index < len(self.columns) else None

    def check_watermark(self, watermark: str | None) -> None:
        """A watermark must land in the source's order (not as text of another type)."""
        if not watermark:
            return
        column = self.column(watermark)
        if column is not None and column.as_text:
            raise JobError(
                f"job {self.job_id}: watermark column {column.name} ({self.source_type} "
                f"{column.source_type}) lands as text, which does not sort like the source; "
                "use a timestamp, date or integer column as watermark_column"
            )


def build_plan(
    job_id: str,
    table: str,
    source_type: str,
    reflected: Sequence[Mapping[str, Any]],
    plan_column: Callable[[str, Any], ColumnPlan | Refusal],
    session: Callable[[Any], AbstractContextManager[Any]] | None = None,
) -> TablePlan:
    """The plan of a reflected table (`{"name", "type", "nullable"}` per column); every
    refused column is named in one JobError, with its reason and what to do."""
    planned: list[ColumnPlan] = []
    refused: list[Refusal] = []
    renamed = renames(str(info["name"]) for info in reflected)
    for info in reflected:
        decision = plan_column(str(info["name"]), info["type"])
        if isinstance(decision, Refusal):
            refused.append(decision)
        else:
            nullable = info.get("nullable", True) is not False
            decision = replace(decision, nullable=nullable)
            if decision.name in renamed:
                decision = replace(decision, name=renamed[decision.name], source=decision.name)
            planned.append(decision)
    if refused:
        raise JobError(
            f"job {job_id}: table {table} has column(s) no lake type holds exactly; nothing was "
            "loaded: "
            + "; ".join(
                f"{r.name} ({source_type} {r.source_type}): {r.reason}; {r.remedy}" for r in refused
            )
        )
    return TablePlan(job_id, table, source_type, tuple(planned), session)


def type_name(sql_type: Any, dialect: Any = None) -> str:
    """A reflected type as the source's SQL names it (`numeric(50,10)`, `timestamp with time
    zone`); `(not recognised)` for a type SQLAlchemy did not recognise."""
    if isinstance(sql_type, sa.types.NullType):
        return "(not recognised)"
    try:
        text = sql_type.compile(dialect=dialect)
    except Exception:  # a type this dialect cannot render: its generic name
        text = type(sql_type).__name__
    return text.lower().replace(", ", ",")
