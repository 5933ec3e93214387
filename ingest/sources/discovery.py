"""What a SQL source holds, for `dlt-ingest discover`: its tables with their primary keys, a
row estimate and the columns that could serve as a watermark, and the job each one should get.

Reflection goes through SQLAlchemy's Inspector (table names, columns with identity /
auto-increment flags, primary keys, indexes: each dialect's own catalogue queries). Row
estimates come from the catalogue statistics, one query per schema, never from counting:

| dialect | statistic |
|---|---|
| PostgreSQL | `pg_class.reltuples` (ANALYZE / autovacuum; none before the first) |
| MySQL / MariaDB | `information_schema.TABLES.TABLE_ROWS` |
| SQL Server | `sys.partitions.rows` of the heap or clustered index |
| Oracle | `ALL_TABLES.NUM_ROWS` (DBMS_STATS) |
| SQLite | none |

Watermark candidates, best first: an indexed timestamp or date whose name says it changes
with the row (`updated_at`, `modified`, ...), another indexed timestamp or date, then an
increasing integer (identity, serial or auto-increment; SQLite's INTEGER PRIMARY KEY). An
index matters: INCREMENTAL sends `watermark >= last value` to the database.

The proposal: FULL for a table estimated below `full_below` rows (or without a candidate),
INCREMENTAL on the best candidate otherwise, with the table's primary key. Tables whose names
are not plain SQL names (the configuration refuses them) are listed, not proposed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ingest.identifiers import is_sql_name
from ingest.vocabulary import LoadType

#: tables estimated below this many rows are proposed FULL (a snapshot per run)
DEFAULT_FULL_BELOW = 100_000
#: column names of a timestamp that moves when the row changes (lower case, substrings)
UPDATE_HINTS = ("updated", "modified", "changed", "last_update", "lastupdate", "mtime")

#: one statistics query per dialect: (table name, estimated rows) of the tables of :schema
ROW_ESTIMATES: dict[str, sa.TextClause] = {
    "postgresql": sa.text(
        "SELECT c.relname AS table_name, c.reltuples AS estimate "
        "FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
    ),
    "mysql": sa.text(
        "SELECT TABLE_NAME AS table_name, TABLE_ROWS AS estimate "
        "FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE = 'BASE TABLE'"
    ),
    "mssql": sa.text(
        "SELECT t.name AS table_name, SUM(p.rows) AS estimate "
        "FROM sys.tables AS t "
        "JOIN sys.schemas AS s ON s.schema_id = t.schema_id "
        "JOIN sys.partitions AS p ON p.object_id = t.object_id AND p.index_id IN (0, 1) "
        "WHERE s.name = :schema "
        "GROUP BY t.name"
    ),
    "oracle": sa.text(
        "SELECT table_name AS table_name, num_rows AS estimate "
        "FROM all_tables "
        "WHERE owner = :schema"
    ),
}


@dataclass(frozen=True)
class DiscoveredTable:
    """One table of the source and the job proposed for it."""

    schema: str | None
    name: str
    primary_key: tuple[str, ...]
    #: the catalogue's estimate (None: the database keeps none, or has not computed it yet)
    estimated_rows: int | None
    #: watermark candidates, best first
    watermarks: tuple[str, ...]
    #: FULL / INCREMENTAL, or "" when no job is proposed (see note)
    load_type: str
    watermark: str | None
    note: str = ""

    @property
    def proposed(self) -> bool:
        return bool(self.load_type)


@dataclass(frozen=True)
class Discovery:
    source_type: str
    schema: str | None
    tables: tuple[DiscoveredTable, ...] = field(default_factory=tuple)


def row_estimates(connection: Any, dialect: str, schema: str | None) -> dict[str, int]:
    """table name (lower case) -> estimated rows, from the dialect's statistics ({} where it
    keeps none).
    Estimates below zero (PostgreSQL before the first ANALYZE) are left out."""
    query = ROW_ESTIMATES.get(dialect)
    if query is None or schema is None:
        return {}
    if connection.dialect.requires_name_normalize:  # Oracle: the catalogue's names are upper case
        schema = connection.dialect.denormalize_name(schema)
    estimates = {}
    for name, estimate in connection.execute(query, {"schema": schema}):
        if estimate is not None and float(estimate) >= 0:
            estimates[str(name).lower()] = int(float(estimate))
    return estimates


def _kind(column_type: Any) -> str:
    """timestamp, date, integer or other."""
    if isinstance(column_type, sa.DateTime):
        return "timestamp"
    if isinstance(column_type, sa.Date):
        return "date"
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, sa.Numeric) and getattr(column_type, "scale", None) == 0:
        return "integer"  # Oracle NUMBER(p, 0)
    return "other"


def watermark_candidates(
    columns: Sequence[Mapping[str, Any]],
    primary_key: Sequence[str],
    indexes: Sequence[Mapping[str, Any]],
    dialect: str,
) -> tuple[str, ...]:
    """Columns that could be the table's watermark, best first (see the module doc)."""
    leading = {str(ix["column_names"][0]) for ix in indexes if ix.get("column_names")}
    if primary_key:
        leading.add(primary_key[0])
    changing: list[str] = []
    timestamps: list[str] = []
    integers: list[str] = []
    for column in columns:
        name = str(column["name"])
        kind = _kind(column["type"])
        if kind in ("timestamp", "date") and name in leading:
            lowered = name.lower()
            (changing if any(h in lowered for h in UPDATE_HINTS) else timestamps).append(name)
        elif kind == "integer":
            increasing = column.get("autoincrement") is True or bool(column.get("identity"))
            if dialect == "sqlite" and list(primary_key) == [name]:
                increasing = True  # INTEGER PRIMARY KEY: the rowid, new rows get max + 1
            if increasing:
                integers.append(name)
    return tuple(changing + timestamps + integers)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a table name matches one of the shell patterns (case-insensitive; none: all)."""
    patterns = [p for p in patterns if p]
    return not patterns or any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def propose(
    schema: str | None,
    name: str,
    primary_key: tuple[str, ...],
    estimate: int | None,
    watermarks: tuple[str, ...],
    full_below: int,
) -> DiscoveredTable:
    """The job for one table (see the module doc)."""
    invalid = [n for n in (name, *primary_key) if not is_sql_name(n)]
    if invalid:
        return DiscoveredTable(
            schema,
            name,
            primary_key,
            estimate,
            watermarks,
            "",
            None,
            f"not proposed: {', '.join(repr(n) for n in invalid)} is not a plain SQL name "
            "(the configuration accepts letters, digits, _ and $); read it through a view",
        )
    usable = tuple(w for w in watermarks if is_sql_name(w))
    small = estimate is not None and estimate < full_below
    if usable and not small:
        note = "" if estimate is not None else "no row estimate (statistics not gathered yet)"
        if not primary_key:
            note = "; ".join(
                n
                for n in (
                    note,
                    "no primary key: rows at the last watermark are told apart by "
                    "a hash of the whole row",
                )
                if n
            )
        return DiscoveredTable(
            schema, name, primary_key, estimate, watermarks, LoadType.INCREMENTAL, usable[0], note
        )
    if small:
        note = f"small table (under {full_below:,} rows): a snapshot per run"
    elif estimate is None:
        note = "no watermark candidate; no row estimate"
    else:
        note = "no watermark candidate: the whole table is read every run"
    return DiscoveredTable(
        schema, name, primary_key, estimate, watermarks, LoadType.FULL, None, note
    )


def discover(
    engine: sa.Engine,
    schema: str | None = None,
    patterns: Iterable[str] = (),
    full_below: int = DEFAULT_FULL_BELOW,
) -> Discovery:
    """Tables of `schema` (default: the connection's default schema) matching `patterns`."""
    dialect = engine.dialect.name
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        in_schema = schema or inspector.default_schema_name
        names = sorted(n for n in inspector.get_table_names(schema=schema) if matches(n, patterns))
        estimates = row_estimates(connection, dialect, in_schema) if names else {}
        found = []
        for name in names:
            columns = inspector.get_columns(name, schema=schema)
            primary_key = tuple(
                inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ()
            )
            indexes = inspector.get_indexes(name, schema=schema)
            watermarks = watermark_candidates(columns, primary_key, indexes, dialect)
            found.append(
                propose(
                    schema, name, primary_key, estimates.get(name.lower()), watermarks, full_below
                )
            )
    return Discovery(dialect, schema, tuple(found))
