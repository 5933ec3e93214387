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

The literal is built for a whole batch at once: each row is one join of its values with NUL
where the record's quotes go (`row_text`; PostgreSQL's text output never holds NUL), and the
escaping (a value's `\\` and `"`, twice: in the record, then in the array), the quotes and the
rows' boundaries are a few replacements over the batch's text (`text_array_sql`;
`record_literals` for psycopg2). 100,000 rows: ~0.3 s of the reading thread against ~0.5 s
with a literal built value by value.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
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


#: PostgreSQL text never holds NUL, so NUL marks the structure of a row's text (`row_text`)
_NUL = "\x00"
#: between two rows' texts in a batch
_ROWS = _NUL * 4


def row_text(values: Sequence[Any]) -> str:
    """A row's text form with NUL where the quotes go (`("a",,"")` is `(\\0a\\0,\\0\\0\\0,
    \\0\\0)`: a NULL is one NUL between its quotes): one join per row; the escaping is
    done for a whole batch at once (`text_array_sql`, `record_literals`)."""
    try:
        return "(\x00" + "\x00,\x00".join([_NUL if v is None else v for v in values]) + "\x00)"
    except TypeError:  # a value that is not text (a key read back from JSON)
        texts = [_NUL if v is None else v if type(v) is str else str(v) for v in values]
        return "(\x00" + "\x00,\x00".join(texts) + "\x00)"


def _check_structure(text: str, rows: int, width: int, nulls: int) -> None:
    """`rows` row texts of `width` values, `nulls` of them NULL, hold 2 NULs per value, one
    more per NULL and 4 between two rows, and no other: a value holding one (which
    PostgreSQL's text output cannot) would move the quotes."""
    if text.count(_NUL) != 2 * width * rows + nulls + 4 * (rows - 1):
        raise JobError("a change's value holds a NUL character, which PostgreSQL text cannot")


def record_literals(texts: Sequence[str], width: int, nulls: int) -> list[str]:
    """Each row's PostgreSQL record literal (`("a",,"")`), for a bind parameter."""
    if texts:
        _check_structure(_ROWS.join(texts), len(texts), width, nulls)
    return [
        t.replace("\\", "\\\\").replace('"', '\\"').replace(_NUL * 3, "").replace(_NUL, '"')
        for t in texts
    ]


def text_array_sql(texts: Sequence[str], width: int, nulls: int) -> str:
    """A SQL constant of the PostgreSQL text[] holding each row's record literal: the
    array's literal, each element quoted, dollar-quoted with a tag none of it holds, so the
    server reads it as written whatever `standard_conforming_strings` says. Built for the
    whole batch at once: a value's `\\` and `"` are escaped twice (in the record, then in the
    array), the NULs of `row_text` become the record's quotes (`\\"` in the array), a NULL's
    nothing, and the rows' boundaries `","`."""
    if not texts:
        return "CAST('{}' AS text[])"
    joined = _ROWS.join(texts)
    _check_structure(joined, len(texts), width, nulls)
    body = (
        joined.replace("\\", "\\\\\\\\")
        .replace('"', '\\\\\\"')
        .replace(_ROWS, '","')
        .replace(_NUL * 3, "")
        .replace(_NUL, '\\"')
    )
    body = '{"' + body + '"}'
    tag = "cdc"
    while f"${tag}$" in body:
        tag = "cdc" + secrets.token_hex(4)
    return f"CAST(${tag}${body}${tag}$ AS text[])"


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

    def __init__(
        self, path: Path, names: Sequence[str], columns: Sequence[str], key_columns: int = 1
    ) -> None:
        #: the table's columns (the order of a row's values) and the varlena ones kept
        self.names, self.columns = tuple(names), list(columns)
        self._kept = tuple(self.names.index(c) for c in self.columns)
        self._single = key_columns == 1
        self.db = sqlite3.connect(str(path))
        # a scratch file of this run only: no journal, no waiting for the disk
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        names_sql = "".join(f", c{i}" for i in range(len(self.columns)))
        self.db.execute(f"CREATE TABLE v (k TEXT PRIMARY KEY{names_sql})")
        self._insert = f"INSERT OR REPLACE INTO v VALUES (?{', ?' * len(self.columns)})"
        #: this batch's keys: their row's values (in `names` order, `_UNKNOWN` where the
        #: lake fills them), or None when deleted
        self.pending: dict[tuple, tuple | None] = {}

    def _text(self, key: tuple) -> str:
        return str(key[0]) if self._single else json.dumps(list(key))

    def _key(self, text: str) -> tuple:
        return (text,) if self._single else tuple(json.loads(text))

    def remember(self, key: tuple, values: tuple, unknown: Sequence[int] = ()) -> None:
        """The key's row (in `names` order); `unknown`: positions the lake fills."""
        if unknown:
            values = tuple(_UNKNOWN if i in unknown else v for i, v in enumerate(values))
        self.pending[key] = values

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
        """The key's varlena values this run had (those it knows), or None."""
        if key in self.pending:
            row = self.pending[key]
            found = None if row is None else tuple(row[i] for i in self._kept)
        else:
            stored = self.db.execute("SELECT * FROM v WHERE k = ?", (self._text(key),)).fetchone()
            found = tuple(stored[1:]) if stored else None
        if found is None:
            return None
        return {
            c: v for c, v in zip(self.columns, found, strict=True) if v is None or type(v) is str
        }

    def flush(self) -> None:
        text, kept = self._text, self._kept
        rows = [(text(k), *[v[i] for i in kept]) for k, v in self.pending.items() if v is not None]
        gone = [(text(k),) for k, v in self.pending.items() if v is None]
        self.db.executemany(self._insert, rows)
        self.db.executemany("DELETE FROM v WHERE k = ?", gone)
        self.pending.clear()

    def close(self) -> None:
        self.db.close()


class Prepared(NamedTuple):
    """A batch of change rows ready to be typed: each row's text (`row_text`), the NULLs
    among their values, the columns of rows the lake fills (UNCHANGED values this run did
    not have), `_lsn` and `_deleted`."""

    texts: list[str]
    nulls: int
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
        #: the change rows' column order (the reader's own tuple when given one)
        self.names = source_columns if isinstance(source_columns, tuple) else tuple(source_columns)
        self._key_at = tuple(self.names.index(k) for k in keys)
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

    def _typed(self, prepared: Prepared) -> pa.Table:
        """The batch's rows as the plan's Arrow table, in their order."""
        width = len(self.names)
        if self.arrow_read is not None and self._arrow_sql is not None:
            before, after = self._arrow_sql
            array = text_array_sql(prepared.texts, width, prepared.nulls)
            return self.plan.from_arrow(self.arrow_read(before + array + after).combine_chunks())
        literals = record_literals(prepared.texts, width, prepared.nulls)
        with self.engine.connect() as connection, self.plan.open_session(connection):
            result = connection.execute(self.query, {ROWS_PARAM: literals})
            table = self.plan.from_rows(result.all())  # one fetch, not a row at a time
            connection.rollback()
        return table

    def convert(self, rows: Sequence[Row]) -> pa.Table:
        return self.finish(self.prepare(rows))

    def prepare(self, rows: Sequence[Row], keep_in_memory: int = 0) -> Prepared:
        """Each row's text and what the batch leaves to the lake (in the reading thread: it
        keeps the run's values for later UNCHANGED ones). The values of up to
        `keep_in_memory` keys (0: this batch's) stay in memory, the rest go to the file."""
        missing: dict[int, list[str]] = {}
        texts: list[str] = []
        names, key_at, unchanged = self.names, self._key_at, self.unchanged
        if len(unchanged.pending) >= keep_in_memory:
            unchanged.flush()  # the batches before: on disk now (this one's stay in memory)
        pending = unchanged.pending
        append = texts.append
        nulls = 0
        single = key_at[0] if len(key_at) == 1 else None
        for index, row in enumerate(rows):
            data = row.data
            if row.names is not names and row.names != names:
                data = Row.of("", "", row.values, names).data
            key = (data[single],) if single is not None else tuple([data[i] for i in key_at])
            if row.op == DELETE:
                data = tuple([data[i] if i in key_at else None for i in range(len(names))])
                pending[key] = None
            elif UNCHANGED in data:
                data, still = self._unchanged(key, data)
                if still:
                    missing[index] = [names[i] for i in still]
                unchanged.remember(key, data, still)
            else:
                pending[key] = data
            nulls += data.count(None)
            append(row_text(data))
        orders = [r.order for r in rows]
        deleted = [r.op == DELETE for r in rows]
        return Prepared(texts, nulls, missing, orders, deleted)

    def _unchanged(self, key: tuple, data: tuple) -> tuple[tuple, list[int]]:
        """An update's UNCHANGED values: the key's earlier ones in this run, else NULL for
        now, their positions returned (the lake's value, filled after the typing)."""
        earlier = self.unchanged.recall(key) or {}
        values, still = list(data), []
        for i, value in enumerate(data):
            if value is not UNCHANGED:
                continue
            column = self.names[i]
            if column in earlier:
                values[i] = earlier[column]
            else:
                still.append(i)
                values[i] = None
        return tuple(values), still

    def finish(self, prepared: Prepared) -> pa.Table:
        """The prepared batch typed (on the source), filled from the lake, with `_lsn` and
        `_deleted`: touches nothing of the run's reading, so it may run in another thread."""
        table = self._typed(prepared)
        if len(table) != len(prepared.texts):
            raise JobError(f"{len(prepared.texts)} change(s) converted into {len(table)} row(s)")
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
