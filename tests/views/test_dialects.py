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
