"""Render a `ViewDef` as SQL: DuckDB, Synapse serverless, Databricks, Spark.

Every dialect is rendered from the same definition: the same columns (the stored dlt schema's,
with their types), the same files (only completed loads'), and `_load_id` / `_load_date` from
each file's path (`.../<YYYY>/<MM>/<DD>/<load_id>.<file_id>.parquet`).

- DuckDB: `read_parquet([...files...])`, one read per set of files that share their columns;
  local paths or `az://` (see `ingest.views.duck`).
- Synapse serverless: `OPENROWSET(BULK ..., FORMAT = 'PARQUET') WITH (...)` over the account's
  `https://<account>.dfs.core.windows.net/<container>/...` URLs; statements separated by `GO`.
- Databricks: `read_files('abfss://...', format => 'parquet')`, one read per load (a load's
  files are named by a glob on its load id in its date folder).
- Spark: the same with `parquet.`abfss://...``.

Identifiers are quoted for each dialect (they come from dlt's snake_case naming of configured
names, validated as plain SQL names); paths are string literals, escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from ingest.lake.layout import (
    DATA_EXTENSION,
    DATE_FOLDER_FORMAT,
    DATE_FOLDER_PATTERN,
    LOAD_ID_PATTERN,
)
from ingest.views.definition import (
    CURRENT,
    DELETED,
    HISTORY,
    LOAD_DATE,
    LOAD_ID,
    STATE,
    VALID_FROM,
    VALID_TO,
    VERSIONS,
    Column,
    Part,
    ViewDef,
)

if TYPE_CHECKING:
    from ingest.lake.destination import Destination

#: the file-name column DuckDB adds to each row (named so no data column can clash)
DUCKDB_FILE_COLUMN = "__ingest_file"
SYNAPSE_ALIAS = "r"
SYNAPSE_TEXT = "VARCHAR(8000) COLLATE Latin1_General_100_BIN2_UTF8"
SYNAPSE_TEXT_MAX = "VARCHAR(MAX) COLLATE Latin1_General_100_BIN2_UTF8"
#: DuckDB, Synapse, Spark and Databricks decimals hold at most 38 digits
MAX_DECIMAL_PRECISION = 38
DEFAULT_DECIMAL = (38, 9)
#: a view never declares a decimal it cannot hold: CAST to fewer digits reads wrong values
#: (DuckDB returned 1.5 of a decimal(50,10) file as 25165824), so such columns are left out
TOO_WIDE = (
    "more than 38 digits, which no view engine holds; loads land such columns as text now "
    "(a --full-refresh rewrites the table)"
)


class ViewRenderError(ValueError):
    """A definition that cannot be expressed in a dialect (reported, never half-written)."""


# ------------------------------------------------------------------------------------------
# where the files are, per dialect


@dataclass(frozen=True)
class LakeUrls:
    """Absolute URLs of lake files as each engine names them."""

    protocol: str
    #: file lakes: the absolute root folder; az lakes: "<container>[/<prefix>]"
    root: str
    account: str | None = None

    @classmethod
    def of(cls, dest: Destination) -> LakeUrls:
        return cls(dest.protocol, dest.root, dest.account_name)

    def _split(self) -> tuple[str, str]:
        container, _, prefix = self.root.partition("/")
        return container, (prefix + "/" if prefix else "")

    def url(self, dialect: str, relative: str) -> str:
        """DuckDB names local files and az:// blobs literally; the other engines take URLs, so
        their paths are percent-encoded (a space, %, # or + in the lake path stays itself)."""
        if self.protocol == "file":
            if dialect == "duckdb":
                return f"{self.root}/{relative}"
            return "file://" + quote(f"{self.root}/{relative}", safe="/*")
        container, prefix = self._split()
        if dialect == "duckdb":
            return f"az://{container}/{prefix}{relative}"
        encoded = quote(f"{prefix}{relative}", safe="/*")  # * : a load's glob
        if dialect == "synapse":
            return f"https://{self.account}.dfs.core.windows.net/{container}/{encoded}"
        return f"abfss://{container}@{self.account}.dfs.core.windows.net/{encoded}"


# ------------------------------------------------------------------------------------------
# types


def _decimal(column: Column) -> tuple[int, int]:
    if column.precision is None:
        return DEFAULT_DECIMAL
    if column.precision > MAX_DECIMAL_PRECISION:  # left out of every view (`too_wide`)
        raise ViewRenderError(f"column {column.name}: decimal({column.precision}) {TOO_WIDE}")
    return column.precision, min(column.scale or 0, column.precision)


def too_wide(column: Column) -> bool:
    """A decimal with more digits than the engines hold (written by earlier versions: a
    numeric(50,10) as decimal256, a dlt `wei` as decimal(76,0))."""
    if column.data_type == "wei":
        return True
    return column.data_type == "decimal" and (column.precision or 0) > MAX_DECIMAL_PRECISION


def _declared(column: Column) -> str:
    if column.data_type == "decimal":
        return f"decimal({column.precision},{column.scale})"
    return column.data_type


def left_out(view: ViewDef, dialect: str) -> list[tuple[Column, str]]:
    """The view's columns a dialect cannot read exactly, each with why (said in the text)."""
    found = []
    for column in view.columns:
        if too_wide(column):
            found.append((column, TOO_WIDE))
        elif dialect in ("spark", "databricks") and column.data_type == "time":
            found.append((column, "Spark cannot read Parquet TIME columns"))
    return found


def readable_columns(view: ViewDef, dialect: str) -> list[Column]:
    skipped = {c.name for c, _ in left_out(view, dialect)}
    return [c for c in view.columns if c.name not in skipped]


def _integer(column: Column, names: Sequence[str]) -> str:
    """dlt's bigint precision is in bits: 8, 16, 32, 64."""
    bits = column.precision or 64
    for limit, name in zip((8, 16, 32), names[:3], strict=True):
        if bits <= limit:
            return name
    return names[3]


def duckdb_type(column: Column) -> str:
    kind = column.data_type
    if kind == "bigint":
        return _integer(column, ("TINYINT", "SMALLINT", "INTEGER", "BIGINT"))
    if kind == "decimal":
        precision, scale = _decimal(column)
        return f"DECIMAL({precision},{scale})"
    if kind == "timestamp":
        return "TIMESTAMPTZ" if column.timezone else "TIMESTAMP"
    return {
        "text": "VARCHAR",
        "double": "DOUBLE",
        "bool": "BOOLEAN",
        "binary": "BLOB",
        "json": "VARCHAR",
        "date": "DATE",
        "time": "TIME",
    }.get(kind, "VARCHAR")


def synapse_type(column: Column) -> str:
    kind = column.data_type
    if kind == "bigint":
        return _integer(column, ("SMALLINT", "SMALLINT", "INT", "BIGINT"))  # TINYINT is unsigned
    if kind == "decimal":
        precision, scale = _decimal(column)
        return f"DECIMAL({precision},{scale})"
    if kind == "timestamp":
        return "DATETIME2(6)"  # Parquet timestamps are UTC instants; Synapse reads them as such
    if kind == "text":
        # UTF-8 collation: Parquet strings are UTF-8. A known max length in characters takes
        # up to 4 bytes per character.
        if column.precision and column.precision * 4 <= 8000:
            return f"VARCHAR({column.precision * 4}) COLLATE Latin1_General_100_BIN2_UTF8"
        return SYNAPSE_TEXT
    return {
        "double": "FLOAT",
        "bool": "BIT",
        "binary": "VARBINARY(8000)",
        "json": SYNAPSE_TEXT_MAX,
        "date": "DATE",
        "time": "TIME(6)",
    }.get(kind, SYNAPSE_TEXT)


def spark_type(column: Column) -> str | None:
    """Databricks and Spark; None: the type cannot be read from Parquet by Spark."""
    kind = column.data_type
    if kind == "bigint":
        return _integer(column, ("TINYINT", "SMALLINT", "INT", "BIGINT"))
    if kind == "decimal":
        precision, scale = _decimal(column)
        return f"DECIMAL({precision},{scale})"
    if kind == "timestamp":
        return "TIMESTAMP" if column.timezone else "TIMESTAMP_NTZ"
    if kind == "time":
        return None  # Spark has no TIME type and fails on Parquet TIME columns
    return {
        "text": "STRING",
        "double": "DOUBLE",
        "bool": "BOOLEAN",
        "binary": "BINARY",
        "json": "STRING",
        "date": "DATE",
    }.get(kind, "STRING")


# ------------------------------------------------------------------------------------------
# quoting


def quote_double(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_bracket(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def quote_backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal_sql(text: str) -> str:
    """A string literal for DuckDB and T-SQL."""
    return "'" + text.replace("'", "''") + "'"


def literal_spark(text: str) -> str:
    """A string literal for Spark SQL (backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ------------------------------------------------------------------------------------------
# rendering


def header(view: ViewDef, dialect: str) -> str:
    what = {
        "union": "every completed load",
        CURRENT: "the latest completed snapshot",
        HISTORY: "every completed snapshot",
        STATE: f"the current state, one row per key ({', '.join(view.keys)})",
        VERSIONS: "every version and delete marker of each key",
    }[view.kind]
    lines = [
        f"-- {view.dataset}.{view.name}: {what} of job {view.job_id} ({view.load_type}, "
        f"table {view.table}); {len(view.loads)} completed load(s)"
        + (f", latest {max(view.loads, key=float)}" if view.loads else "")
        + ".",
        f"-- {dialect} view generated by `python -m ingest views` from the lake's completion "
        "markers and stored dlt schema; every run rewrites it: do not edit.",
    ]
    lines += [f"-- note: {note}" for note in view.notes]
    lines += [
        f"-- left out: {column.name} ({_declared(column)}): {why}"
        for column, why in left_out(view, dialect)
        if too_wide(column)
    ]
    return "\n".join(lines)


#: names the keyed views use inside their SQL (never a data column: those come from dlt's
#: snake_case naming, which never starts with two underscores)
RANK, VERSIONS_ALIAS, RANKED_ALIAS = "__ingest_rank", "__ingest_versions", "__ingest_ranked"
BASE_ALIAS, LATER_ALIAS = "__ingest_base", "__ingest_later"


class Renderer:
    dialect: str
    terminator = ";"
    q: Callable[[str], str]

    def __init__(self, urls: LakeUrls):
        self.urls = urls

    def body(self, view: ViewDef) -> str:
        """The union of a view's loads (each dialect's own)."""
        raise NotImplementedError

    # --- a keyed table: its current state and its versions, over the union of its loads ----

    def statement_body(self, view: ViewDef) -> str:
        """The SELECT of a view: the union of its loads, and for a keyed table the current
        state or the versions computed over it."""
        body = self.body(view)
        if view.kind == STATE:
            return self.state_of(view, body)
        if view.kind == VERSIONS:
            return self.versions_of(view, body)
        return body

    def visible(self, view: ViewDef) -> list[str]:
        """The data columns the union exposes and the view shows, in order."""
        return [c.name for c in view.data_columns]

    def load_number(self, expression: str) -> str:
        return f"CAST({expression} AS DECIMAL(20,7))"

    def flag(self, expression: str) -> str:
        """A delete flag as a boolean, false for rows without one."""
        return f"COALESCE({expression}, false)"

    def is_false(self, expression: str) -> str:
        return f"NOT {self.flag(expression)}"

    def false(self) -> str:
        return "false"

    def load_time(self, expression: str) -> str:
        """The UTC time of a load id (a unix time)."""
        raise NotImplementedError

    def desc_nulls_last(self, expression: str) -> str:
        return f"{expression} DESC NULLS LAST"

    def asc_nulls_first(self, expression: str) -> str:
        return f"{expression} ASC NULLS FIRST"

    def version_order(self, view: ViewDef, newest_first: bool) -> str:
        """A key's versions in order: by watermark, then load, then a delete marker after a
        row of the same load."""
        q = self.q
        items = []
        if view.order_by:
            column = q(view.order_by)
            items.append(
                self.desc_nulls_last(column) if newest_first else self.asc_nulls_first(column)
            )
        direction = "DESC" if newest_first else "ASC"
        items.append(f"{self.load_number(q(LOAD_ID))} {direction}")
        if view.has_deleted:
            items.append(f"{self.flag_order(q(DELETED))} {direction}")
        return ", ".join(items)

    def flag_order(self, expression: str) -> str:
        return self.flag(expression)

    def state_of(self, view: ViewDef, body: str) -> str:
        """The current state. From a compacted base (one row per key, no deleted key) only
        the keys the loads after it touched are ranked: the base's other rows are read as they
        are, so the view costs what its changes cost, not what its history does."""
        if view.base_load is None:
            return self._ranked(view, body)
        base = replace(view, parts=tuple(p for p in view.parts if p.load_id == view.base_load))
        later = replace(view, parts=tuple(p for p in view.parts if p.load_id != view.base_load))
        shown = self._shown(view)
        if not later.parts:
            return _select(shown) + f"\nFROM (\n{self.body(base)}\n) AS {self.q(BASE_ALIAS)}"
        q = self.q
        match = " AND ".join(f"{q(LATER_ALIAS)}.{q(k)} = {q(BASE_ALIAS)}.{q(k)}" for k in view.keys)
        touched = f"SELECT 1 FROM {q(LATER_ALIAS)} WHERE {match}"
        versions = (
            f"SELECT * FROM {q(LATER_ALIAS)}\nUNION ALL\nSELECT * FROM {q(BASE_ALIAS)} "
            f"WHERE EXISTS ({touched})"
        )
        return (
            f"WITH {self.cte(BASE_ALIAS)} (\n{self.body(base)}\n), {self.cte(LATER_ALIAS)} (\n"
            f"{self.body(later)}\n)\n"
            + _select(shown)
            + f"\nFROM {q(BASE_ALIAS)} WHERE NOT EXISTS ({touched})\nUNION ALL\n"
            + self._ranked(view, versions)
        )

    def _shown(self, view: ViewDef) -> list[str]:
        return [self.q(name) for name in self.visible(view)] + [self.q(LOAD_ID), self.q(LOAD_DATE)]

    def cte(self, name: str) -> str:
        """`<name> AS` opening a common table expression."""
        return f"{self.q(name)} AS"

    def _ranked(self, view: ViewDef, versions: str) -> str:
        """The newest version of each key among `versions`, unless it is a delete marker."""
        q = self.q
        keys = ", ".join(q(k) for k in view.keys)
        deleted = self.is_false(q(DELETED)) if view.has_deleted else None
        where = f"{q(RANK)} = 1" + (f" AND {deleted}" if deleted else "")
        return (
            _select(self._shown(view))
            + f"\nFROM (\n    SELECT {q(VERSIONS_ALIAS)}.*, ROW_NUMBER() OVER (PARTITION BY "
            + f"{keys} ORDER BY {self.version_order(view, True)}) AS {q(RANK)}\n    FROM (\n"
            + versions
            + f"\n    ) AS {q(VERSIONS_ALIAS)}\n) AS {q(RANKED_ALIAS)}\nWHERE {where}"
        )

    def versions_of(self, view: ViewDef, body: str) -> str:
        """Every version and delete marker, in the order the current state ranks them (so the
        last one of a key is its current version or its marker). A version is valid from the
        time its load landed it (never before the version ranked before it: a late row loaded
        after a newer version) to the next version's start; the last one's `_valid_to` is NULL."""
        q = self.q
        keys = ", ".join(q(k) for k in view.keys)
        order = self.version_order(view, False)
        valid_from = (
            f"MAX({self.load_time(q(LOAD_ID))}) OVER (PARTITION BY {keys} ORDER BY {order} "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
        deleted = self.flag(q(DELETED)) if view.has_deleted else self.false()
        shown = [q(name) for name in self.visible(view) if name != DELETED]
        shown += [q(LOAD_ID), q(LOAD_DATE), f"{self.as_flag(deleted)} AS {q(DELETED)}"]
        shown.append(f"{q(VALID_FROM)}")
        shown.append(
            f"LEAD({q(VALID_FROM)}) OVER (PARTITION BY {keys} ORDER BY {order}) AS {q(VALID_TO)}"
        )
        inner = (
            f"SELECT {q(VERSIONS_ALIAS)}.*, {valid_from} AS {q(VALID_FROM)}"
            f"\nFROM (\n{body}\n) AS {q(VERSIONS_ALIAS)}"
        )
        return _select(shown) + f"\nFROM (\n{inner}\n) AS {q(RANKED_ALIAS)}"

    def as_flag(self, expression: str) -> str:
        return expression

    # one statement per view, preceded by its header; a file joins them
    def render(self, views: Sequence[ViewDef]) -> str:
        if not views:
            return ""
        statements = [self.schema_statement(views[0].dataset)]
        for view in views:
            statements.append(header(view, self.dialect) + "\n" + self.view_statement(view))
        return self.join(statements) + "\n"

    def join(self, statements: Sequence[str]) -> str:
        return "\n\n".join(s + self.terminator for s in statements)

    def schema_statement(self, dataset: str) -> str:
        raise NotImplementedError

    def view_statement(self, view: ViewDef) -> str:
        raise NotImplementedError


def _select(items: Sequence[str]) -> str:
    return "SELECT\n" + ",\n".join("    " + item for item in items)


class DuckDbRenderer(Renderer):
    dialect = "duckdb"
    q = staticmethod(quote_double)

    def schema_statement(self, dataset: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.q(dataset)}"

    def view_statement(self, view: ViewDef) -> str:
        name = f"{self.q(view.dataset)}.{self.q(view.name)}"
        return f"CREATE OR REPLACE VIEW {name} AS\n{self.statement_body(view)}"

    def load_time(self, expression: str) -> str:
        return f"to_timestamp(CAST({expression} AS DOUBLE))"

    def cte(self, name: str) -> str:
        """DuckDB materialises a CTE that is read more than once, and its joins on one ran
        ~25 x slower than on the inlined query (the state of the year's table from a base and
        29 loads: 12.4 s against 0.5 s): inlined."""
        return f"{self.q(name)} AS NOT MATERIALIZED"

    def _ranked(self, view: ViewDef, versions: str) -> str:
        """DuckDB: the newest version of each key by an aggregate and a join, not a window:
        DuckDB's window functions do not spill to disk, its aggregates and joins do, so the
        state of a table of any size is read within its memory limit. The rank per key is a
        fixed-size aggregate (`max(struct)`, which spills; `max_by(row, rank)` keeps whole rows
        and ran out of 512 MB on 6M keys); the versions are read twice, not through a CTE (a
        join on a materialised CTE took ~33 us a row here, on two scans ~0.4 us). The order is
        the other dialects' (`version_order`: a watermark's NULL ranks lowest)."""
        q = self.q
        versions_alias, winners = q(VERSIONS_ALIAS), q(RANKED_ALIAS)

        def fields(alias: str) -> list[tuple[str, str]]:
            out = []
            if view.order_by:
                column = f"{alias}.{q(view.order_by)}"
                out += [("n", f"{column} IS NOT NULL"), ("w", column)]
            out.append(("l", self.load_number(f"{alias}.{q(LOAD_ID)}")))
            if view.has_deleted:
                out.append(("d", self.flag(f"{alias}.{q(DELETED)}")))
            return out

        inner = q("__ingest_inner")
        rank = "struct_pack(" + ", ".join(f"{n} := {e}" for n, e in fields(inner)) + ")"
        keys_inner = ", ".join(f"{inner}.{q(k)}" for k in view.keys)
        on = [f"{versions_alias}.{q(k)} = {winners}.{q(k)}" for k in view.keys]
        for name, expression in fields(versions_alias):
            won = f"{winners}.{q(RANK)}.{name}"
            on.append(
                f"{expression} IS NOT DISTINCT FROM {won}"
                if name == "w"
                else f"{expression} = {won}"
            )
        shown = [f"{versions_alias}.{column}" for column in self._shown(view)]
        ranked = (
            f"SELECT {keys_inner}, max({rank}) AS {q(RANK)}\n"
            f"FROM (\n{versions}\n) AS {inner}\nGROUP BY {keys_inner}"
        )
        where = ""
        if view.has_deleted:
            where = f"\nWHERE {self.is_false(f'{versions_alias}.{q(DELETED)}')}"
        return (
            _select(shown)
            + f"\nFROM (\n{versions}\n) AS {versions_alias}\nJOIN (\n{ranked}\n) AS {winners}"
            + "\nON "
            + "\n    AND ".join(on)
            + where
        )

    def state_keys(self, view: ViewDef) -> str:
        """The keys (and the watermark) of the current state's rows, by one fixed-size
        aggregate of each key's newest rank and no join: what counts and key comparisons need
        (6M keys of TPC-H lineitem within 512 MB: 1.4 s, where the whole state spilled a join
        for 62 s). The same rows as `statement_body`'s state: a key whose newest version is a
        delete marker is not there."""
        q = self.q
        alias, ranked = q(VERSIONS_ALIAS), q(RANKED_ALIAS)
        keys = [q(k) for k in view.keys]
        fields = []
        if view.order_by:
            column = f"{alias}.{q(view.order_by)}"
            fields += [f"n := {column} IS NOT NULL", f"w := {column}"]
        fields.append(f"l := {self.load_number(f'{alias}.{q(LOAD_ID)}')}")
        if view.has_deleted:
            fields.append(f"d := {self.flag(f'{alias}.{q(DELETED)}')}")
        shown = [f"{ranked}.{k} AS {k}" for k in keys]
        if view.order_by:
            shown.append(f"{ranked}.{q(RANK)}.w AS {q(view.order_by)}")
        grouped = ", ".join(f"{alias}.{k}" for k in keys)
        inner = (
            f"SELECT {grouped}, max(struct_pack({', '.join(fields)})) AS {q(RANK)}\n"
            f"FROM (\n{self.body(view)}\n) AS {alias}\nGROUP BY {grouped}"
        )
        where = f"\nWHERE NOT {ranked}.{q(RANK)}.d" if view.has_deleted else ""
        return _select(shown) + f"\nFROM (\n{inner}\n) AS {ranked}" + where

    def columns(self, view: ViewDef, present: frozenset[str] | None) -> list[str]:
        items = []
        for column in readable_columns(view, self.dialect):
            source = self.q(column.name) if present is None or column.name in present else "NULL"
            items.append(f"CAST({source} AS {duckdb_type(column)}) AS {self.q(column.name)}")
        return items

    def body(self, view: ViewDef) -> str:
        if not view.parts:
            items = self.columns(view, frozenset())
            items += [f"CAST(NULL AS VARCHAR) AS {self.q(LOAD_ID)}"]
            items += [f"CAST(NULL AS DATE) AS {self.q(LOAD_DATE)}"]
            return _select(items) + "\nWHERE false"
        reads = []
        if view.load_in_path:
            file_column = self.q(DUCKDB_FILE_COLUMN)
            for columns, parts in view.groups():
                items = self.columns(view, columns)
                items.append(
                    f"regexp_extract({file_column}, {literal_sql(LOAD_ID_PATTERN)}, 1) "
                    f"AS {self.q(LOAD_ID)}"
                )
                items.append(
                    f"CAST(strptime(regexp_extract({file_column}, "
                    f"{literal_sql(DATE_FOLDER_PATTERN)}, 1), {literal_sql(DATE_FOLDER_FORMAT)}) "
                    "AS DATE) "
                    f"AS {self.q(LOAD_DATE)}"
                )
                files = [f for part in parts for f in part.files]
                reads.append(_select(items) + f"\nFROM {self.read(files, DUCKDB_FILE_COLUMN)}")
        else:
            for part in view.parts:
                items = self.columns(view, part.columns)
                items.append(self._literal_load(part))
                items.append(self._literal_date(part))
                reads.append(_select(items) + f"\nFROM {self.read(list(part.files), None)}")
        return "\nUNION ALL\n".join(reads)

    def _literal_load(self, part: Part) -> str:
        value = literal_sql(part.load_id) if part.load_id else "NULL"
        return f"CAST({value} AS VARCHAR) AS {self.q(LOAD_ID)}"

    def _literal_date(self, part: Part) -> str:
        value = literal_sql(part.load_date) if part.load_date else "NULL"
        return f"CAST({value} AS DATE) AS {self.q(LOAD_DATE)}"

    def read(self, files: Sequence[str], file_column: str | None) -> str:
        paths = ",\n    ".join(literal_sql(self.urls.url("duckdb", f)) for f in files)
        options = "union_by_name = true"
        if file_column:
            options += f", filename = {literal_sql(file_column)}"
        return f"read_parquet([\n    {paths}\n], {options})"


class SynapseRenderer(Renderer):
    dialect = "synapse"
    terminator = "\nGO"
    q = staticmethod(quote_bracket)

    def schema_statement(self, dataset: str) -> str:
        inner = literal_sql(f"CREATE SCHEMA {self.q(dataset)}")
        return f"IF SCHEMA_ID({literal_sql(dataset)}) IS NULL EXEC({inner});"

    def view_statement(self, view: ViewDef) -> str:
        name = f"{self.q(view.dataset)}.{self.q(view.name)}"
        return f"CREATE OR ALTER VIEW {name} AS\n{self.statement_body(view)};"

    def flag(self, expression: str) -> str:
        return f"ISNULL(CAST({expression} AS INT), 0)"

    def is_false(self, expression: str) -> str:
        return f"{self.flag(expression)} = 0"

    def false(self) -> str:
        return "0"

    def as_flag(self, expression: str) -> str:
        return f"CAST({expression} AS BIT)"

    def desc_nulls_last(self, expression: str) -> str:
        return f"{expression} DESC"  # T-SQL sorts NULLs first ascending, last descending

    def asc_nulls_first(self, expression: str) -> str:
        return f"{expression} ASC"

    def load_time(self, expression: str) -> str:
        number = self.load_number(expression)
        seconds = f"CAST(FLOOR({number}) AS INT)"
        micros = f"CAST(({number} - FLOOR({number})) * 1000000 AS INT)"
        epoch = "CAST('1970-01-01T00:00:00' AS DATETIME2(6))"
        return f"DATEADD(MICROSECOND, {micros}, DATEADD(SECOND, {seconds}, {epoch}))"

    def with_clause(self, view: ViewDef, present: frozenset[str]) -> str:
        items = [
            f"{self.q(c.name)} {synapse_type(c)}"
            for c in readable_columns(view, self.dialect)
            if c.name in present
        ]
        return "WITH (\n" + ",\n".join("    " + i for i in items) + "\n)"

    def columns(self, view: ViewDef, present: frozenset[str]) -> list[str]:
        items = []
        for column in readable_columns(view, self.dialect):
            if column.name in present:
                items.append(f"{self.q(SYNAPSE_ALIAS)}.{self.q(column.name)}")
            else:
                items.append(f"CAST(NULL AS {synapse_type(column)}) AS {self.q(column.name)}")
        return items

    def body(self, view: ViewDef) -> str:
        if not view.parts and not view.delta_folder:
            items = [
                f"CAST(NULL AS {synapse_type(c)}) AS {self.q(c.name)}"
                for c in readable_columns(view, self.dialect)
            ]
            items += [f"CAST(NULL AS VARCHAR(64)) AS {self.q(LOAD_ID)}"]
            items += [f"CAST(NULL AS DATE) AS {self.q(LOAD_DATE)}"]
            return "SELECT TOP 0\n" + ",\n".join("    " + i for i in items)
        alias = self.q(SYNAPSE_ALIAS)
        if view.delta_folder:
            url = self.urls.url("synapse", view.delta_folder.rstrip("/") + "/")
            present = frozenset(c.name for c in readable_columns(view, self.dialect))
            items = self.columns(view, present)
            items += [f"CAST(NULL AS VARCHAR(64)) AS {self.q(LOAD_ID)}"]
            items += [f"CAST(NULL AS DATE) AS {self.q(LOAD_DATE)}"]
            return (
                _select(items)
                + f"\nFROM OPENROWSET(\n    BULK {literal_sql(url)},\n    FORMAT = 'DELTA'\n) "
                + self.with_clause(view, present)
                + f" AS {alias}"
            )
        reads = []
        if view.load_in_path:
            name, path = f"{alias}.filename()", f"{alias}.filepath()"
            load_id = (
                f"CAST(LEFT({name}, LEN({name}) - CHARINDEX('.', REVERSE({name}), "
                f"CHARINDEX('.', REVERSE({name})) + 1)) AS VARCHAR(64)) AS {self.q(LOAD_ID)}"
            )
            load_day = (
                f"CONVERT(DATE, REPLACE(SUBSTRING({path}, LEN({path}) - LEN({name}) - 10, 10), "
                f"'/', '-'), 23) AS {self.q(LOAD_DATE)}"
            )
            sources: list[tuple[frozenset[str], list[str], Part | None]] = [
                (c, [f for p in parts for f in p.files], None) for c, parts in view.groups()
            ]
        else:
            sources = [(p.columns, list(p.files), p) for p in view.parts]
        for present, files, part in sources:
            items = self.columns(view, present)
            if part is None:
                items += [load_id, load_day]
            else:
                value = literal_sql(part.load_id) if part.load_id else "NULL"
                day = literal_sql(part.load_date) if part.load_date else "NULL"
                items += [f"CAST({value} AS VARCHAR(64)) AS {self.q(LOAD_ID)}"]
                items += [f"CAST({day} AS DATE) AS {self.q(LOAD_DATE)}"]
            urls = [literal_sql(self.urls.url("synapse", f)) for f in files]
            bulk = (
                urls[0] if len(urls) == 1 else "(\n        " + ",\n        ".join(urls) + "\n    )"
            )
            reads.append(
                _select(items)
                + f"\nFROM OPENROWSET(\n    BULK {bulk},\n    FORMAT = 'PARQUET'\n) "
                + self.with_clause(view, present)
                + f" AS {alias}"
            )
        return "\nUNION ALL\n".join(reads)

    def join(self, statements: Sequence[str]) -> str:
        return "\n\n".join(s + self.terminator for s in statements)


class SparkRenderer(Renderer):
    """Spark SQL: `parquet.`path``, one read per load."""

    dialect = "spark"
    q = staticmethod(quote_backtick)

    def schema_statement(self, dataset: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.q(dataset)}"

    def view_statement(self, view: ViewDef) -> str:
        name = f"{self.q(view.dataset)}.{self.q(view.name)}"
        left_out = [c.name for c in view.columns if c.data_type == "time"]
        note = (
            f"-- left out: {', '.join(left_out)} (time): Spark cannot read Parquet TIME columns\n"
            if left_out
            else ""
        )
        return f"{note}CREATE OR REPLACE VIEW {name} AS\n{self.statement_body(view)}"

    def visible(self, view: ViewDef) -> list[str]:
        readable = {c.name for c in self.readable(view)}
        return [c.name for c in view.data_columns if c.name in readable]

    def load_time(self, expression: str) -> str:
        return f"timestamp_seconds(CAST({expression} AS DECIMAL(20,6)))"

    def source(self, path: str) -> str:
        return f"parquet.{self.q(path)}"

    def delta_source(self, path: str) -> str:
        return f"delta.{self.q(path)}"

    def readable(self, view: ViewDef) -> list[Column]:
        return readable_columns(view, self.dialect)

    def columns(self, view: ViewDef, present: frozenset[str]) -> list[str]:
        items = []
        for column in self.readable(view):
            source = self.q(column.name) if column.name in present else "NULL"
            items.append(f"CAST({source} AS {spark_type(column)}) AS {self.q(column.name)}")
        return items

    def load_columns(self, part: Part | None) -> list[str]:
        load_id = part.load_id if part else None
        day = part.load_date if part else None
        return [
            f"CAST({literal_spark(load_id) if load_id else 'NULL'} AS STRING) AS {self.q(LOAD_ID)}",
            (f"DATE {literal_spark(day)}" if day else "CAST(NULL AS DATE)")
            + f" AS {self.q(LOAD_DATE)}",
        ]

    def paths(self, part: Part) -> list[str]:
        """One path per read: the load's files by a glob on its load id when the part is the
        whole load in one folder, else each file."""
        if len(part.files) > 1 and part.whole_load and part.single_folder and part.load_id:
            return [self.urls.url(self.dialect, f"{part.folder}/{part.load_id}.*.{DATA_EXTENSION}")]
        return [self.urls.url(self.dialect, f) for f in part.files]

    def body(self, view: ViewDef) -> str:
        if not view.parts and not view.delta_folder:
            items = self.columns(view, frozenset()) + self.load_columns(None)
            return _select(items) + "\nWHERE false"
        if view.delta_folder:
            present = frozenset(c.name for c in view.columns)
            items = self.columns(view, present) + self.load_columns(None)
            path = self.urls.url(self.dialect, view.delta_folder.rstrip("/"))
            return _select(items) + f"\nFROM {self.delta_source(path)}"
        reads = []
        for part in view.parts:
            items = self.columns(view, part.columns) + self.load_columns(part)
            for path in self.paths(part):
                reads.append(_select(items) + f"\nFROM {self.source(path)}")
        return "\nUNION ALL\n".join(reads)


class DatabricksRenderer(SparkRenderer):
    """Databricks SQL: `read_files(path, format => 'parquet')`."""

    dialect = "databricks"

    def source(self, path: str) -> str:
        return f"read_files({literal_spark(path)}, format => 'parquet')"


RENDERERS: dict[str, Callable[[LakeUrls], Renderer]] = {
    "duckdb": DuckDbRenderer,
    "synapse": SynapseRenderer,
    "databricks": DatabricksRenderer,
    "spark": SparkRenderer,
}


def render(dialect: str, views: Sequence[ViewDef], urls: LakeUrls) -> str:
    """The SQL file of one job's views (the view, and for FULL jobs its history view)."""
    try:
        renderer = RENDERERS[dialect](urls)
    except KeyError:
        known = ", ".join(RENDERERS)
        raise ViewRenderError(f"unknown dialect {dialect!r}; use one of {known}") from None
    return renderer.render(views)
