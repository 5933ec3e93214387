"""The type map: for every source type, what each column lands as, exactly, or a refusal
naming the column (README, "Sources: types").

`plan_table` decides per reflected column, from its SQLAlchemy type only (the lake schema never
depends on the data), one of: a native Arrow type the drivers read exactly; the text the
source prints for the value (the SELECT casts it, SQLAlchemy quotes the identifier); or a
refusal saying what to do. The plan then builds the SELECT both read paths run and turns their
batches into the lake's Arrow table, refusing a value its type cannot hold (infinite dates,
zero dates, 24:00:00, NaN in a decimal, ...) with an error naming the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ingest.sources.typemap import mssql, mysql, oracle, postgres, sqlite
from ingest.sources.typemap.plan import ColumnPlan, Refusal, TablePlan, build_plan

#: source_type -> its map of one column
COLUMN_MAPS: dict[str, Callable[[str, Any], ColumnPlan | Refusal]] = {
    "postgresql": postgres.plan_column,
    "mysql": mysql.plan_column,
    "sqlite": sqlite.plan_column,
    "mssql": mssql.plan_column,
    "oracle": oracle.plan_column,
}

#: source_type -> what its read's session needs (see TablePlan.session)
SESSIONS: dict[str, Callable[[Any], Any]] = {"postgresql": postgres.session}


def plan_table(
    source_type: str, job_id: str, table: str, reflected: Sequence[Mapping[str, Any]]
) -> TablePlan:
    """The read plan of a reflected table; a JobError names every refused column."""
    return build_plan(
        job_id, table, source_type, reflected, COLUMN_MAPS[source_type], SESSIONS.get(source_type)
    )


def plan_column(source_type: str, name: str, sql_type: Any) -> ColumnPlan | Refusal:
    """One column's decision (the README's type table is checked against these)."""
    return COLUMN_MAPS[source_type](name, sql_type)


__all__ = ["COLUMN_MAPS", "ColumnPlan", "Refusal", "TablePlan", "plan_column", "plan_table"]
