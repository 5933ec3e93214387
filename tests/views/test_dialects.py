"""The four dialects are rendered from one definition.

Databricks and Spark texts are parsed with sqlglot. sqlglot does not parse Synapse's
`OPENROWSET(BULK ...) WITH (...)`, so the Synapse text's structure is checked here: every view,
every column with its type, exactly the definition's files. One generated text of each dialect
is pinned in `tests/golden/views/<dialect>.sql`; after an intended change, regenerate them with
`.venv/bin/python -c "from tests.views.test_dialects import write_golden; write_golden()"` and
review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from ingest.views import DIALECTS
from ingest.views.definition import (
    CURRENT,
    HISTORY,
    LOAD_DATE,
    LOAD_ID,
    UNION,
    Column,
    Part,
    ViewDef,
)
from ingest.views.dialects import LakeUrls, render, spark_type, synapse_type

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "views"
URLS = LakeUrls("az", "raw-data/lake", "mylake")

COLUMNS = (
    Column("customer_id", "bigint", precision=32, nullable=False),
    Column("name", "text"),
    Column("balance", "decimal", precision=10, scale=2),
    Column("seen_at", "timestamp"),
    Column("born", "date"),
    Column("opens", "time"),
    Column("vip", "bool"),
    Column("tier", "text", precision=10),
)
OLD = frozenset(c.name for c in COLUMNS if c.name != "tier")
NEW = frozenset(c.name for c in COLUMNS)
LOADS = ("1764201600.1234567", "1764288000.7654321", "1764291600.5")


def parts() -> tuple[Part, ...]:
    folder = "erp/customers/2025/11/{}"
    return (
        Part(LOADS[0], (f"{folder.format(27)}/{LOADS[0]}.a1b2c3d4e5.parquet",), OLD),
        Part(
            LOADS[1],
            (
                f"{folder.format(28)}/{LOADS[1]}.f6a7b8c9d0.parquet",
                f"{folder.format(28)}/{LOADS[1]}.0a9b8c7d6e.parquet",
            ),
            NEW,
        ),
        Part(LOADS[2], (f"{folder.format(28)}/{LOADS[2]}.1f2e3d4c5b.parquet",), NEW),
    )


def full_job_views() -> list[ViewDef]:
    every = parts()
    common = dict(dataset="erp", table="customers", job_id="007", load_type="FULL")
    return [
        ViewDef(name="customers", kind=CURRENT, columns=COLUMNS, parts=every[-1:],
                loads=LOADS[-1:], **common),
        ViewDef(name="customers_history", kind=HISTORY, columns=COLUMNS, parts=every,
                loads=LOADS, **common),
    ]  # fmt: skip


def incremental_views() -> list[ViewDef]:
    return [
        ViewDef(
            dataset="erp",
            name="orders",
            table="orders",
            job_id="008",
            load_type="INCREMENTAL",
            kind=UNION,
            columns=COLUMNS,
            parts=parts(),
            loads=(*LOADS, "1764300000.25"),  # a completed load without a file of this table
        )
    ]


def write_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for dialect in DIALECTS:
        (GOLDEN / f"{dialect}.sql").write_text(render(dialect, full_job_views(), URLS))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_generated_text_is_pinned(dialect):
    assert render(dialect, full_job_views(), URLS) == (GOLDEN / f"{dialect}.sql").read_text()


def urls_of(views: list[ViewDef], dialect: str) -> set[str]:
    return {URLS.url(dialect, f) for v in views for f in v.files}


# ------------------------------------------------------------------------------------------
# Databricks and Spark: parsed


@pytest.mark.parametrize("dialect", ["databricks", "spark"])
@pytest.mark.parametrize("make", [full_job_views, incremental_views])
def test_databricks_and_spark_texts_parse_and_read_exactly_the_files(dialect, make):
    views = make()
    statements = sqlglot.parse(render(dialect, views, URLS), read=dialect)
    assert isinstance(statements[0], exp.Create) and statements[0].kind == "SCHEMA"
    created = statements[1:]
    assert [s.this.sql(dialect) for s in created] == [f"`erp`.`{v.name}`" for v in views]
    readable = [c.name for c in COLUMNS if spark_type(c) is not None]
    assert "opens" not in readable  # TIME: Spark cannot read it; the text says so
    for statement, view in zip(created, views, strict=True):
        selects = list(statement.expression.find_all(exp.Select))
        for select in selects:
            assert [e.alias_or_name for e in select.expressions] == [*readable, LOAD_ID, LOAD_DATE]
        sources = {
            t.this.name if dialect == "spark" else t.this.expressions[0].name
            for t in statement.find_all(exp.Table)
            if t.this is not None and t.name != view.name
        }
        # one read per load; a load of several files is named by a glob on its load id
        expected = set()
        for part in view.parts:
            if len(part.files) > 1:
                expected.add(URLS.url(dialect, f"{part.folder}/{part.load_id}.*.parquet"))
            else:
                expected.add(URLS.url(dialect, part.files[0]))
        assert sources == expected
        assert len(selects) == len(view.parts)


# ------------------------------------------------------------------------------------------
# Synapse: structure


def synapse_views(text: str) -> dict[str, str]:
    batches = [b.strip() for b in text.split("\nGO") if b.strip()]
    assert batches[0].startswith("IF SCHEMA_ID('erp') IS NULL EXEC('CREATE SCHEMA [erp]');")
    views = {}
    for batch in batches[1:]:
        match = re.search(r"^CREATE OR ALTER VIEW \[erp\]\.\[(\w+)\] AS\n", batch, re.M)
        assert match, batch
        before = batch[: match.start()]
        assert all(line.startswith("--") for line in before.splitlines())  # first statement
        views[match.group(1)] = batch[match.end() :]
    return views


def synapse_blocks(body: str) -> list[tuple[list[str], list[str], list[tuple[str, str]]]]:
    """(select items, BULK urls, WITH columns) of each read of a view."""
    blocks = []
    for block in body.rstrip(";").split("\nUNION ALL\n"):
        select, _, rest = block.partition("\nFROM OPENROWSET(")
        items = [line.strip().rstrip(",") for line in select.splitlines()[1:]]
        bulk = re.search(r"BULK (\(.*?\)|'[^']*'),\n    FORMAT = 'PARQUET'", rest, re.S)
        assert bulk, rest
        urls = re.findall(r"'([^']*)'", bulk.group(1))
        with_clause = re.search(r"\) WITH \(\n(.*?)\n\) AS \[r\]$", rest, re.S)
        assert with_clause, rest
        columns = [
            tuple(line.strip().rstrip(",").split(" ", 1))
            for line in with_clause.group(1).splitlines()
        ]
        blocks.append((items, urls, columns))
    return blocks


@pytest.mark.parametrize("make", [full_job_views, incremental_views])
def test_synapse_text_has_every_view_every_typed_column_and_only_the_files(make):
    views = make()
    found = synapse_views(render("synapse", views, URLS))
    assert list(found) == [v.name for v in views]
    for view in views:
        blocks = synapse_blocks(found[view.name])
        assert len(blocks) == len(view.groups())  # one OPENROWSET per column set
        urls = [u for _, block_urls, _ in blocks for u in block_urls]
        assert sorted(urls) == sorted(urls_of([view], "synapse"))
        assert all(
            u.startswith("https://mylake.dfs.core.windows.net/raw-data/lake/erp/") for u in urls
        )
        for (items, _, with_columns), (present, _) in zip(blocks, view.groups(), strict=True):
            assert len(items) == len(COLUMNS) + 2
            for item, column in zip(items[: len(COLUMNS)], COLUMNS, strict=True):
                if column.name in present:
                    assert item == f"[r].[{column.name}]"
                    assert (f"[{column.name}]", synapse_type(column)) in with_columns
                else:
                    assert item == f"CAST(NULL AS {synapse_type(column)}) AS [{column.name}]"
            assert [name for name, _ in with_columns] == [
                f"[{c.name}]" for c in COLUMNS if c.name in present
            ]
            assert items[-2].endswith(f"AS [{LOAD_ID}]") and "filename()" in items[-2]
            assert items[-1].endswith(f"AS [{LOAD_DATE}]") and "filepath()" in items[-1]


def test_synapse_load_id_and_date_expressions_pick_the_path_apart():
    """The T-SQL expressions, evaluated with Python's equivalents of LEFT, LEN, CHARINDEX,
    REVERSE and SUBSTRING (1-based), on a real path."""
    url = URLS.url("synapse", parts()[1].files[0])
    name = url.rsplit("/", 1)[1]

    def charindex(needle: str, haystack: str, start: int = 1) -> int:
        return haystack.find(needle, start - 1) + 1

    rev = name[::-1]
    load_id = name[: len(name) - charindex(".", rev, charindex(".", rev) + 1)]
    assert load_id == LOADS[1]
    start = len(url) - len(name) - 10
    assert url[start - 1 : start - 1 + 10].replace("/", "-") == "2025-11-28"
    text = render("synapse", full_job_views(), URLS)
    assert "LEN([r].filepath()) - LEN([r].filename()) - 10, 10" in text
    assert (
        "CHARINDEX('.', REVERSE([r].filename()), CHARINDEX('.', REVERSE([r].filename())) + 1)"
        in text
    )  # noqa: E501


# ------------------------------------------------------------------------------------------
# one definition, four texts


def test_every_dialect_names_the_same_files_and_columns():
    views = full_job_views()
    texts = {d: render(d, views, URLS) for d in DIALECTS}
    for dialect, text in texts.items():
        for view in views:
            for part in view.parts:
                for f in part.files:
                    named = URLS.url(dialect, f) in text
                    globbed = URLS.url(dialect, f"{part.folder}/{part.load_id}.*.parquet") in text
                    assert named or globbed, (dialect, f)
        for column in COLUMNS:
            if dialect in ("databricks", "spark") and column.data_type == "time":
                continue
            assert column.name in text
    assert texts["duckdb"].count("CREATE OR REPLACE VIEW") == 2
    assert texts["synapse"].count("CREATE OR ALTER VIEW") == 2


def test_an_empty_view_has_the_columns_and_no_rows():
    import duckdb

    view = ViewDef(dataset="erp", name="empty", table="empty", job_id="9", load_type="FULL",
                   kind=CURRENT, columns=COLUMNS, parts=(), loads=("1764201600.5",))  # fmt: skip
    connection = duckdb.connect()
    connection.execute(render("duckdb", [view], URLS))
    described = connection.execute("DESCRIBE erp.empty").fetchall()
    assert [r[0] for r in described] == [c.name for c in COLUMNS] + [LOAD_ID, LOAD_DATE]
    assert [r[1] for r in described][:4] == [
        "INTEGER",
        "VARCHAR",
        "DECIMAL(10,2)",
        "TIMESTAMP WITH TIME ZONE",
    ]  # noqa: E501
    assert connection.execute("SELECT count(*) FROM erp.empty").fetchall() == [(0,)]
    for dialect in ("databricks", "spark"):
        sqlglot.parse(render(dialect, [view], URLS), read=dialect)
    assert "SELECT TOP 0" in render("synapse", [view], URLS)


# ------------------------------------------------------------------------------------------
# keyed tables: the current state and the versions


def keyed_views() -> list[ViewDef]:
    from ingest.views.definition import DELETED, STATE, VERSIONS

    columns = (*COLUMNS, Column(DELETED, "bool"))
    common = dict(dataset="erp", table="orders", job_id="008", load_type="INCREMENTAL")
    common.update(columns=columns, parts=parts(), loads=LOADS, keys=("customer_id",))
    common.update(order_by="seen_at")
    return [
        ViewDef(name="orders", kind=STATE, **common),
        ViewDef(name="orders_history", kind=VERSIONS, **common),
    ]


def write_keyed_golden() -> None:
    for dialect in DIALECTS:
        (GOLDEN / f"{dialect}_keyed.sql").write_text(render(dialect, keyed_views(), URLS))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keyed_text_is_pinned(dialect):
    assert render(dialect, keyed_views(), URLS) == (GOLDEN / f"{dialect}_keyed.sql").read_text()


@pytest.mark.parametrize("dialect", ["databricks", "spark"])
def test_keyed_views_parse_rank_by_key_and_add_the_history_columns(dialect):
    from ingest.views.definition import DELETED, VALID_FROM, VALID_TO

    state, versions = sqlglot.parse(render(dialect, keyed_views(), URLS), read=dialect)[1:]
    windows = list(state.find_all(exp.Window))
    assert len(windows) == 1 and isinstance(windows[0].this, exp.RowNumber)
    assert [p.name for p in windows[0].args["partition_by"]] == ["customer_id"]
    order = [o.this.sql(dialect) for o in windows[0].args["order"].expressions]
    assert order[0] == "`seen_at`" and "_load_id" in order[1] and DELETED in order[2]
    outer = state.expression
    readable = [c.name for c in COLUMNS if spark_type(c) is not None]
    assert [e.alias_or_name for e in outer.expressions] == [*readable, LOAD_ID, LOAD_DATE]
    where = outer.args["where"].sql(dialect)
    assert "__ingest_rank` = 1" in where and DELETED in where
    names = [e.alias_or_name for e in versions.expression.expressions]
    assert names == [*readable, LOAD_ID, LOAD_DATE, DELETED, VALID_FROM, VALID_TO]
    kinds = sorted(type(w.this).__name__ for w in versions.find_all(exp.Window))
    assert kinds == ["Lead", "Max"]  # valid from: the running latest load time; to: the next


def test_synapse_keyed_views_have_the_rank_and_the_history_columns():
    text = render("synapse", keyed_views(), URLS)
    found = synapse_views(text)
    assert list(found) == ["orders", "orders_history"]
    state = found["orders"]
    assert "ROW_NUMBER() OVER (PARTITION BY [customer_id] ORDER BY [seen_at] DESC" in state
    assert "WHERE [__ingest_rank] = 1 AND ISNULL(CAST([_deleted] AS INT), 0) = 0" in state
    history = found["orders_history"]
    assert "MAX(DATEADD(MICROSECOND" in history and "ROWS BETWEEN UNBOUNDED PRECEDING" in history
    assert "LEAD([_valid_from]) OVER (PARTITION BY [customer_id]" in history
    assert "CAST(ISNULL(CAST([_deleted] AS INT), 0) AS BIT) AS [_deleted]" in history
    # the union inside reads exactly the files, one OPENROWSET per column set
    inner = state.split("FROM (\n", 2)[2].rsplit("\n    ) AS [__ingest_versions]", 1)[0]
    urls = [u for _, block_urls, _ in synapse_blocks(inner) for u in block_urls]
    assert sorted(urls) == sorted(urls_of(keyed_views()[:1], "synapse"))


def test_duckdb_keyed_views_pick_the_newest_version_and_drop_deleted_keys(tmp_path):
    """Three loads of one key-space, executed: the newest watermark wins, a tie goes to the
    later load, a delete marker of a later load removes the key, and the history chains the
    versions (each `_valid_to` is the next `_valid_from`)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.views.definition import DELETED, STATE, VERSIONS

    loads = ["1764201600.1", "1764288000.2", "1764374400.3"]
    rows = [
        [(1, "a", 10), (2, "b", 10), (3, "c", 10)],
        [(1, "a2", 20), (2, "late", 5)],  # key 2: a lower watermark from a later load loses
        [(3, None, 10, True), (2, "b2", 10)],  # key 3 deleted; key 2: a tie, the later load wins
    ]
    schema_cols = (Column("k", "bigint"), Column("v", "text"), Column("w", "bigint"))
    the_parts = []
    for load_id, load_rows in zip(loads, rows, strict=True):
        folder = tmp_path / "erp" / "t" / "2025" / "11" / "27"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{load_id}.aaaaaaaaaa.parquet"
        data = {
            "k": [r[0] for r in load_rows],
            "v": [r[1] for r in load_rows],
            "w": [r[2] for r in load_rows],
        }
        present = {"k", "v", "w"}
        if any(len(r) == 4 for r in load_rows):
            data[DELETED] = [len(r) == 4 for r in load_rows]
            present.add(DELETED)
        pq.write_table(pa.table(data), path)
        the_parts.append(Part(load_id, (f"erp/t/2025/11/27/{path.name}",), frozenset(present)))
    common = dict(dataset="erp", table="t", job_id="1", load_type="INCREMENTAL")
    common.update(columns=(*schema_cols, Column(DELETED, "bool")), parts=tuple(the_parts))
    common.update(loads=tuple(loads), keys=("k",), order_by="w")
    views = [
        ViewDef(name="t", kind=STATE, **common),
        ViewDef(name="t_history", kind=VERSIONS, **common),
    ]
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(render("duckdb", views, LakeUrls("file", str(tmp_path))))
    state = connection.execute("SELECT k, v, w, _load_id FROM erp.t ORDER BY k").fetchall()
    assert state == [(1, "a2", 20, loads[1]), (2, "b2", 10, loads[2])]
    history = connection.execute(
        "SELECT k, v, _deleted, _valid_from, _valid_to FROM erp.t_history ORDER BY k, _valid_from"
    ).fetchall()
    by_key: dict = {}
    for k, v, deleted, valid_from, valid_to in history:
        by_key.setdefault(k, []).append((v, deleted, valid_from, valid_to))
    assert [v for v, *_ in by_key[3]] == ["c", None] and by_key[3][-1][1] is True
    assert by_key[3][0][3] == by_key[3][1][2] and by_key[3][1][3] is None
    assert len(by_key[2]) == 3


# types: no view declares what its engine cannot hold (issue 24)

#: every lake type the type map lands (ingest.sources.typemap.lake), at its widest
EVERY_LAKE_TYPE = (
    Column("id", "bigint", nullable=False),
    Column("small", "bigint", precision=32),
    Column("ratio", "double"),
    Column("money", "decimal", precision=38, scale=10),
    Column("unsigned", "decimal", precision=20, scale=0),
    Column("flag", "bool"),
    Column("day", "date"),
    Column("at", "timestamp", timezone=False),
    Column("at_utc", "timestamp", timezone=True),
    Column("opens", "time"),
    Column("doc", "text"),
    Column("blob", "binary"),
)
#: written by earlier versions: numeric(50,10) as decimal256, a dlt wei as decimal(76,0)
TOO_WIDE_COLUMNS = (
    Column("amount_50_10", "decimal", precision=50, scale=10),
    Column("amount_wei", "wei"),
)
DECIMAL_DECLARATION = re.compile(r"DECIMAL\((\d+),(\d+)\)")


def typed_view(columns: tuple[Column, ...]) -> ViewDef:
    part = Part(
        LOADS[0],
        (f"erp/wide/2025/11/27/{LOADS[0]}.a1b2c3d4e5.parquet",),
        frozenset(c.name for c in columns),
    )
    return ViewDef(dataset="erp", name="wide", table="wide", job_id="9", load_type="FULL",
                   kind=CURRENT, columns=columns, parts=(part,), loads=LOADS[:1])  # fmt: skip


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_view_declares_a_decimal_wider_than_38_digits(dialect):
    text = render(dialect, [typed_view(EVERY_LAKE_TYPE + TOO_WIDE_COLUMNS)], URLS)
    declared = [(int(p), int(s)) for p, s in DECIMAL_DECLARATION.findall(text)]
    assert declared and all(p <= 38 and s <= p for p, s in declared), declared
    assert (38, 10) in declared and (20, 0) in declared
    for column in TOO_WIDE_COLUMNS:  # left out: named once, in the note that says why
        assert text.count(column.name) == 1, column
    assert "-- left out: amount_50_10 (decimal(50,10)): more than 38 digits" in text
    assert "-- left out: amount_wei" in text
    for column in EVERY_LAKE_TYPE:
        if dialect in ("spark", "databricks") and column.data_type == "time":
            continue
        assert column.name in text, column.name


def test_duckdb_view_of_a_decimal_wider_than_38_digits_returns_no_wrong_value(tmp_path):
    """DuckDB read a decimal(50,10) file's 1.5 as 25165824 through the old view's cast: the
    column is left out now, the others read exactly."""
    import decimal

    import duckdb
    import pyarrow.parquet as pq

    folder = tmp_path / "erp" / "wide" / "2025" / "11" / "27"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "wide": pa.array([decimal.Decimal("1.5"), None], pa.decimal256(50, 10)),
            "money": pa.array([decimal.Decimal("1.5"), None], pa.decimal128(38, 10)),
        }
    )
    pq.write_table(table, folder / f"{LOADS[0]}.a1b2c3d4e5.parquet")
    columns = (
        Column("id", "bigint", nullable=False),
        Column("wide", "decimal", precision=50, scale=10),
        Column("money", "decimal", precision=38, scale=10),
    )
    text = render("duckdb", [typed_view(columns)], LakeUrls("file", str(tmp_path)))
    connection = duckdb.connect()
    try:
        connection.execute(text)
        cursor = connection.execute('SELECT * FROM "erp"."wide" ORDER BY id')
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        connection.close()
    assert names == ["id", "money", "_load_id", "_load_date"]
    assert [r[:2] for r in rows] == [(1, decimal.Decimal("1.5000000000")), (2, None)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_state_from_a_base_ranks_only_the_keys_loaded_after_it(dialect):
    """With a compacted base, the base's rows are read as they are unless a later load touched
    their key; only those keys are ranked. Every dialect's text parses (Synapse: its shape)."""
    from dataclasses import replace

    state = replace(keyed_views()[0], base_load=LOADS[0])
    text = render(dialect, [state], URLS)
    assert "__ingest_base" in text and "__ingest_later" in text
    assert "NOT EXISTS" in text and "WHERE EXISTS" in text
    if dialect in ("databricks", "spark"):
        created = sqlglot.parse(text, read=dialect)[1]
        assert len(list(created.find_all(exp.Window))) == 1
    only_base = replace(state, parts=state.parts[:1])
    plain = render(dialect, [only_base], URLS)
    assert "ROW_NUMBER" not in plain  # a base alone: no ranking at all


def test_duckdb_state_from_a_base_equals_the_state_of_every_load(tmp_path):
    """The same loads, read whole or from a base that holds the first two loads' state: the
    same rows."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.views.definition import DELETED, STATE

    folder = tmp_path / "erp" / "t" / "2025" / "11" / "27"
    folder.mkdir(parents=True)

    def write(name: str, rows: list[tuple], deleted: bool = False) -> Part:
        data = {"k": [r[0] for r in rows], "v": [r[1] for r in rows], "w": [r[2] for r in rows]}
        if deleted:
            data[DELETED] = [r[3] for r in rows]
        pq.write_table(pa.table(data), folder / name)
        load_id = name.split(".")[0] + "." + name.split(".")[1]
        return Part(load_id, (f"erp/t/2025/11/27/{name}",), frozenset(data))

    base = write("1764201600.5.base0001.parquet", [(1, "a", 10), (2, "b", 10), (3, "c", 10)])
    later = [
        write("1764288000.1.aaaaaaaaaa.parquet", [(2, "b2", 20), (4, "d", 20)]),
        write("1764374400.2.bbbbbbbbbb.parquet", [(3, None, 20, True)], deleted=True),
    ]
    columns = (
        Column("k", "bigint"),
        Column("v", "text"),
        Column("w", "bigint"),
        Column(DELETED, "bool"),
    )
    common = dict(dataset="erp", table="t", job_id="1", load_type="INCREMENTAL", kind=STATE)
    common.update(columns=columns, keys=("k",), order_by="w", name="t")
    view = ViewDef(parts=(base, *later), loads=(), base_load=base.load_id, **common)
    connection = duckdb.connect()
    connection.execute(render("duckdb", [view], LakeUrls("file", str(tmp_path))))
    rows = connection.execute("SELECT k, v, w FROM erp.t ORDER BY k").fetchall()
    assert rows == [(1, "a", 10), (2, "b2", 20), (4, "d", 20)]
