"""Source columns named like the columns the framework adds land renamed, on both read paths
and in every view: ours keep their meaning, the source's values are kept under
`<name>_source` (a number added when that is taken), and the schema note says so once."""

from __future__ import annotations

import pytest

from ingest.cli import main
from ingest.config import JobConfig
from ingest.views.duck import run_query
from tests.fixtures.orders import SOURCE, run
from tests.fixtures.sheet import TABLE_JOB, sheet_header

DDL = """
CREATE TABLE events (
    id int PRIMARY KEY,
    "_load_id" text NOT NULL,
    "_load_id_source" int,
    "_deleted" boolean,
    "_lsn" bigint,
    "_LOAD_DATE" date,
    updated_at timestamptz NOT NULL
)"""


def _job(pg, **kw) -> JobConfig:
    values = dict(
        job_id="ev",
        enabled=True,
        source_type="postgresql",
        source_name=SOURCE,
        table_name="events",
        load_type="INCREMENTAL",
        watermark_column="updated_at",
        primary_key=("id",),
        schema_name=pg.name,
    )
    values.update(kw)
    return JobConfig(**values)


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_reserved_source_columns_land_renamed_and_the_views_keep_ours(
    pg, file_lake, monkeypatch, tmp_path, backend
):
    monkeypatch.setenv("INGEST_BACKEND", backend)
    pg.execute(DDL)
    pg.execute(
        "INSERT INTO events VALUES (1, 'theirs-1', 7, true, 42, '2020-01-01', '2024-01-01'), "
        "(2, 'theirs-2', NULL, false, NULL, NULL, '2024-01-02')"
    )
    pg.use_as(monkeypatch, SOURCE)
    result = run(_job(pg), file_lake, "r1")
    assert result["status"] == "SUCCESS", result["error"]
    assert "renamed: _load_id -> _load_id_source2" in result["schema_changes"]
    assert "_deleted -> _deleted_source" in result["schema_changes"]
    assert "_LOAD_DATE -> _LOAD_DATE_source" in result["schema_changes"]
    again = run(_job(pg), file_lake, "r2")  # said once, when the renamed columns first land
    assert "renamed" not in again["schema_changes"]

    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + f"\nev,Y,postgresql,{SOURCE},{pg.name},events,INCREMENTAL,"
        "updated_at,id\n",
        encoding="utf-8",
    )
    assert main(["views", "--config", str(config), "--destination", file_lake]) == 0
    rows = run_query(
        file_lake,
        "SELECT id, _load_id, _load_id_source2, _load_id_source, _deleted_source, _lsn_source, "
        "_load_date_source FROM pg_erp.events ORDER BY id",
    ).rows
    assert [r[2] for r in rows] == ["theirs-1", "theirs-2"]
    assert [r[3] for r in rows] == [7, None]
    assert [r[4] for r in rows] == [True, False] and [r[5] for r in rows] == [42, None]
    assert {r[1] for r in rows} == {result["load_id"]}  # ours: the load that wrote the row
    assert str(rows[0][6]) == "2020-01-01"
    # every dialect names each column once
    import duckdb
    import sqlglot
    from sqlglot import exp

    views = tmp_path / "lake" / "metadata" / "views"
    connection = duckdb.connect()
    connection.execute((views / "duckdb" / f"{SOURCE}__events.sql").read_text(encoding="utf-8"))
    for name in ("events", "events_history"):
        described = [r[0] for r in connection.execute(f"DESCRIBE {SOURCE}.{name}").fetchall()]
        assert len(described) == len(set(described)), described
        assert "_load_id" in described and "_load_id_source2" in described
    for dialect in ("databricks", "spark"):
        text = (views / dialect / f"{SOURCE}__events.sql").read_text(encoding="utf-8")
        for statement in sqlglot.parse(text, read=dialect)[1:]:
            for select in statement.find_all(exp.Select):
                names = [e.alias_or_name for e in select.expressions if e.alias_or_name != "*"]
                assert len(names) == len(set(names)), (dialect, names)
    synapse = (views / "synapse" / f"{SOURCE}__events.sql").read_text(encoding="utf-8")
    for block in synapse.split("UNION ALL"):
        select = block.rsplit("SELECT", 1)[-1].split("FROM", 1)[0]
        names = [line.strip().rstrip(",").rsplit(" ", 1)[-1] for line in select.splitlines()]
        names = [n for n in names if n.startswith("[")]
        assert len(names) == len(set(names)), names


def test_a_reserved_name_as_key_or_watermark_is_refused(pg, file_lake, monkeypatch):
    pg.execute(DDL)
    pg.execute("INSERT INTO events VALUES (1, 'x', NULL, NULL, 5, NULL, '2024-01-01')")
    pg.use_as(monkeypatch, SOURCE)
    result = run(_job(pg, primary_key=("_lsn",)), file_lake, "r1")
    assert result["status"] == "FAILED"
    assert "_lsn" in result["error"] and "source view that renames them" in result["error"]
