"""Change rows as the lake's Arrow tables, typed exactly as a FULL load of the table types them.

pgoutput sends each value in PostgreSQL's text form. Rather than parse every type's text
ourselves, the values go back to the source in one statement per batch, as row literals of
the table's own row type: `CAST(text AS <table>)` runs each column type's input function (the
exact inverse of the text output: numeric, timestamptz, json/jsonb, arrays, uuid, bytea ...),
and the row is read through the job's type plan, the very SELECT list and conversion a FULL
load uses (`ingest.sources.typemap`). So a CDC version lands value for value and type for type
as the FULL load of the same row would.

A value an UPDATE left unchanged out of line (TOAST; pgoutput does not send it unless the
table has REPLICA IDENTITY FULL, whose old row carries it) is the key's previous value: from an
earlier change of the key in this run (kept on disk, `UnchangedValues`), else from the lake's
current state (`previous`, given by the job). It is never landed as NULL.

Where the FULL load of the table takes the fast path (ConnectorX, `ingest.sources.fast_arrow`),
the typed rows are read the same way: the batch's literals go into the statement as one text
array constant (dollar-quoted: no escape rule of the server applies inside it), ConnectorX reads
the result in Rust straight into Arrow and the plan's converters type it (`TablePlan.
from_arrow`, the FULL load's own conversion). No Python object per value: 100,000 changes of
the benchmark table (bench/cdc.py) were typed in 0.9-1.7 s against 1.6-2.5 s through psycopg2
(alternated, on a busy machine).
Elsewhere (a column the fast path does not read, no ConnectorX) the rows are fetched through
psycopg2 and the plan's `from_rows`, as the FULL load then does.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import sqlalchemy as sa

from ingest.errors import JobError
from ingest.sources.cdc.changes import DELETE, Row
from ingest.sources.cdc.pgoutput import UNCHANGED
from ingest.sources.typemap import TablePlan
from ingest.vocabulary import DELETED, LSN

#: the column of a batch's position (the read orders by it)
ORDINAL = "_ingest_ordinal"
#: (typed keys of the rows that need them, the column names) -> {key tuple: {column: value}}
Previous = Callable[[pa.Table, list[str]], dict[tuple, dict[str, Any]]]
#: (a statement, no parameters) -> its result as one Arrow table (ConnectorX, the fast path)
ArrowRead = Callable[[str], pa.Table]
#: the bind parameter of the batch's literals
ROWS_PARAM = "ingest_cdc_rows"


def text_array_sql(texts: Sequence[str]) -> str:
    """A SQL constant of the PostgreSQL text[] holding `texts`: the array's literal, each
    element quoted (`\\` and `"` escaped), dollar-quoted with a tag none of it holds, so the
    server reads it as written whatever `standard_conforming_strings` says. PostgreSQL text
    never holds NUL: it joins the elements here (one replace over the whole batch)."""
    if not texts:
        return "CAST('{}' AS text[])"
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        raise JobError("a change's value holds a NUL character, which PostgreSQL text cannot")
    body = '{"' + joined.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", '","') + '"}'
    tag = "cdc"
    while f"${tag}$" in body:
        tag = "cdc" + secrets.token_hex(4)
    return f"CAST(${tag}${body}${tag}$ AS text[])"


def record_literal(values: Iterable[object]) -> str:
    """PostgreSQL's text form of a row: `("a","b\\"c",,"")` (empty: NULL)."""
    fields = []
    for value in values:
        if value is None:
            fields.append("")
            continue
        text = value if type(value) is str else str(value)
        if "\\" in text or '"' in text:
            text = text.replace("\\", "\\\\").replace('"', '\\"')
        fields.append(f'"{text}"')
    return "(" + ",".join(fields) + ")"


def lake_fields() -> list[pa.Field]:
    return [pa.field(LSN, pa.string(), nullable=False), pa.field(DELETED, pa.bool_())]


def lake_hints() -> dict[str, dict[str, Any]]:
    return {
        LSN: {"name": LSN, "data_type": "text", "nullable": False},
        DELETED: {"name": DELETED, "data_type": "bool", "nullable": True},
    }


#: a value no change of this run had (an UNCHANGED one the lake's state fills): not known here
_UNKNOWN = 0


class UnchangedValues:
    """Every key this run changed and did not delete, with the text of its out-of-line-able
    (varlena) columns, on disk (SQLite in the run's working folder): what an UNCHANGED value of
    a later change of the key was, and the keys a TRUNCATE deletes besides the lake's. A
    batch's changes are kept in memory until the next batch or a TRUNCATE needs the file
    (`flush()`: one write per batch but the last, so a run of one batch writes nothing; a
    column per value, text or NULL, exact; a single-column key as its text, a compound one as
    JSON). A value the run never had (UNCHANGED, filled from the lake's current state) is kept
    as not known, so a later change that leaves it unchanged too is filled from the lake as
    well."""

    def __init__(self, path: Path, columns: Sequence[str], key_columns: int = 1) -> None:
        self.columns = list(columns)
        self._single = key_columns == 1
        self.db = sqlite3.connect(str(path))
        # a scratch file of this run only: no journal, no waiting for the disk
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        names = "".join(f", c{i}" for i in range(len(self.columns)))
        self.db.execute(f"CREATE TABLE v (k TEXT PRIMARY KEY{names})")
        self._insert = f"INSERT OR REPLACE INTO v VALUES (?{', ?' * len(self.columns)})"
        #: this batch's keys: their values (in `columns` order), or None when deleted
        self.pending: dict[tuple, tuple | None] = {}

    def _text(self, key: tuple) -> str:
        return str(key[0]) if self._single else json.dumps(list(key))

    def _key(self, text: str) -> tuple:
        return (text,) if self._single else tuple(json.loads(text))

    def remember(self, key: tuple, values: dict[str, object], unknown: Sequence[str] = ()) -> None:
        if unknown:
            self.pending[key] = tuple(
                _UNKNOWN if c in unknown else values.get(c) for c in self.columns
            )
        else:
            self.pending[key] = tuple(map(values.get, self.columns))

    def forget(self, key: tuple) -> None:
        self.pending[key] = None

    def alive_keys(self, size: int) -> Iterator[list[tuple]]:
        """The keys this run changed and did not delete, `size` at a time (a TRUNCATE's)."""
        self.flush()
        cursor = self.db.execute("SELECT k FROM v ORDER BY k")
        while batch := cursor.fetchmany(size):
            yield [self._key(k) for (k,) in batch]

    def clear(self) -> None:
        """After a TRUNCATE: no key is left."""
        self.pending.clear()
        self.db.execute("DELETE FROM v")

    def recall(self, key: tuple) -> dict[str, object] | None:
        """The key's values this run had (those it knows), or None."""
        if key in self.pending:
            found = self.pending[key]
        else:
            row = self.db.execute("SELECT * FROM v WHERE k = ?", (self._text(key),)).fetchone()
            found = tuple(row[1:]) if row else None
        if found is None:
            return None
        return {
            c: v for c, v in zip(self.columns, found, strict=True) if v is None or type(v) is str
        }

    def flush(self) -> None:
        text = self._text
        kept = [(text(k), *v) for k, v in self.pending.items() if v is not None]
        gone = [(text(k),) for k, v in self.pending.items() if v is None]
        self.db.executemany(self._insert, kept)
        self.db.executemany("DELETE FROM v WHERE k = ?", gone)
        self.pending.clear()

    def close(self) -> None:
        self.db.close()


class Prepared(NamedTuple):
    """A batch of change rows ready to be typed: row literals, the columns of rows the lake
    fills (UNCHANGED values this run did not have), `_lsn` and `_deleted`."""

    literals: list[str]
    missing: dict[int, list[str]]
    orders: list[str]
    deleted: list[bool]


class RowConverter:
    """Batches of change rows -> Arrow tables of the plan's schema plus `_lsn`, `_deleted`."""

    def __init__(
        self,
        engine: sa.Engine,
        plan: TablePlan,
        table_sql: str,
        source_columns: Sequence[str],
        keys: tuple[str, ...],
        unchanged: UnchangedValues,
        previous: Previous,
        arrow_read: ArrowRead | None = None,
    ) -> None:
        self.engine, self.plan, self.keys = engine, plan, keys
        self.source_columns = list(source_columns)
        self.unchanged, self.previous = unchanged, previous
        ordinal = ORDINAL
        while ordinal in self.source_columns:  # a source column of that name: another one
            ordinal += "_"
        sub = (
            sa.text(
                f"SELECT (s.r).*, u.n AS {ordinal} FROM unnest(CAST(:{ROWS_PARAM} AS text[])) "
                f"WITH ORDINALITY AS u(txt, n) CROSS JOIN LATERAL "
                f"(SELECT CAST(u.txt AS {table_sql}) AS r OFFSET 0) AS s"
            )
            .columns(*(sa.column(c) for c in self.source_columns), sa.column(ordinal))
            .subquery("t")
        )
        self.query = plan.select(sa.select(sub), sub).order_by(sub.c[ordinal])
        self.schema = pa.schema([*plan.schema, *lake_fields()])
        #: the statement with a place for the literals, for `arrow_read` (None: psycopg2)
        self.arrow_read, self._arrow_sql = arrow_read, None
        if arrow_read is not None:
            self._arrow_sql = _statement_around(self.query, engine.dialect, ROWS_PARAM)

    def _typed(self, literals: list[str]) -> pa.Table:
        """The batch's row literals as the plan's Arrow table, in their order."""
        if self.arrow_read is not None and self._arrow_sql is not None:
            before, after = self._arrow_sql
            return self.plan.from_arrow(
                self.arrow_read(before + text_array_sql(literals) + after).combine_chunks()
            )
        with self.engine.connect() as connection, self.plan.open_session(connection):
            result = connection.execute(self.query, {ROWS_PARAM: literals})
            table = self.plan.from_rows(result.all())  # one fetch, not a row at a time
            connection.rollback()
        return table

    def convert(self, rows: Sequence[Row]) -> pa.Table:
        return self.finish(self.prepare(rows))

    def prepare(self, rows: Sequence[Row], keep_in_memory: int = 0) -> Prepared:
        """The batch's row literals and what it leaves to the lake (in the reading thread: it
        keeps the run's values for later UNCHANGED ones). The values of up to
        `keep_in_memory` keys (0: this batch's) stay in memory, the rest go to the file."""
        missing: dict[int, list[str]] = {}
        literals = []
        keys, columns, unchanged = self.keys, self.source_columns, self.unchanged
        if len(unchanged.pending) >= keep_in_memory:
            unchanged.flush()  # the batches before: on disk now (this one's stay in memory)
        for index, row in enumerate(rows):
            values = row.values
            key = tuple([values.get(k) for k in keys])
            if row.op == DELETE:
                values = {k: values.get(k) for k in keys}
                unchanged.forget(key)
            elif UNCHANGED in values.values():
                gaps = [c for c, v in values.items() if v is UNCHANGED]
                values = dict(values)
                earlier = unchanged.recall(key) or {}
                still = []
                for column in gaps:
                    if column in earlier:
                        values[column] = earlier[column]
                    else:
                        still.append(column)
                        values[column] = None  # the lake's value, filled after the read
                if still:
                    missing[index] = still
                unchanged.remember(key, values, still)
            else:
                unchanged.remember(key, values)
            literals.append(record_literal(map(values.get, columns)))
        orders = [r.order for r in rows]
        deleted = [r.op == DELETE for r in rows]
        return Prepared(literals, missing, orders, deleted)

    def finish(self, prepared: Prepared) -> pa.Table:
        """The prepared batch typed (on the source), filled from the lake, with `_lsn` and
        `_deleted`: touches nothing of the run's reading, so it may run in another thread."""
        table = self._typed(prepared.literals)
        if len(table) != len(prepared.literals):
            raise JobError(f"{len(prepared.literals)} change(s) converted into {len(table)} row(s)")
        if prepared.missing:
            table = self._fill(table, prepared.missing)
        lsn = pa.array(prepared.orders, pa.string())
        deleted = pa.array(prepared.deleted, pa.bool_())
        return pa.Table.from_arrays([*table.columns, lsn, deleted], schema=self.schema)

    def _fill(self, table: pa.Table, missing: dict[int, list[str]]) -> pa.Table:
        """UNCHANGED values no change of this run had: the lake's current values."""
        indices = sorted(missing)
        columns = sorted({c for cs in missing.values() for c in cs})
        names = [self._lake(c) for c in columns]
        keys = table.select([self._lake(k) for k in self.keys]).take(indices)
        found = self.previous(keys, names)
        for name, column in zip(names, columns, strict=True):
            values = table.column(name).to_pylist()
            for index, key in zip(indices, keys.to_pylist(), strict=True):
                if column not in missing[index]:
                    continue
                typed = tuple(key.values())
                if typed not in found:
                    raise JobError(
                        f"an update of {self.plan.table} left column {column} unchanged for a "
                        f"key the lake does not hold ({typed}); set REPLICA IDENTITY FULL on "
                        "the table (its updates then carry every value) and run the job with "
                        "--full-refresh"
                    )
                values[index] = found[typed][name]
            position = table.schema.get_field_index(name)
            table = table.set_column(
                position,
                table.schema.field(position),
                pa.array(values, table.schema.field(position).type),
            )
        return table

    def _lake(self, source: str) -> str:
        for column in self.plan.columns:
            if column.source_name == source:
                return column.name
        return source


def _statement_around(query: Any, dialect: Any, param: str) -> tuple[str, str] | None:
    """`query` as SQL text around its one parameter `param` (what comes before, after), for a
    reader that takes no parameters; None when it has others or the text is not plain (then
    the rows go through psycopg2)."""
    # the dialect's class with named parameters: `:name`, and no `%` doubled for a driver
    compiled = query.compile(dialect=type(dialect)(paramstyle="named"))
    if set(compiled.params) != {param}:
        return None
    text = str(compiled)
    before, found, after = text.partition(f":{param}")
    if not found or f":{param}" in after:
        return None
    return before, after
