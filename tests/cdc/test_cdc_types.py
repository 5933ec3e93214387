"""Exact types: what a CDC job lands (first copy and streamed changes) equals, value for value
and type for type, what a FULL load of the same table lands: numeric, timestamptz, json/jsonb,
arrays, uuid, bytea, and values that are hard to carry (NaN, infinity, BC dates, empty arrays,
quotes, backslashes and commas inside text, NULLs inside arrays)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.cli import main
from tests.conftest import read_lake_table, set_source_env
from tests.fixtures.cdc import view
from tests.fixtures.sheet import TABLE_JOB, sheet_header

CDC, FULL = "pg_cdc", "pg_full"
TYPED = """
CREATE TABLE typed (
    id bigint PRIMARY KEY,
    n numeric(30, 10),
    nf double precision,
    ts timestamptz,
    tsn timestamp,
    d date,
    j json,
    jb jsonb,
    ints int[],
    texts text[],
    u uuid,
    b bytea,
    t text,
    flag boolean,
    tm time,
    iv interval
)"""
ROWS = r"""
INSERT INTO typed VALUES
 (1, 12345678901234567890.0123456789, 1.5, '2024-02-29 23:59:59.123456+05', '2024-01-01 00:00:00.5',
  '2024-01-01', '{"b": 1,  "a": [1, 2]}', '{"b": 1, "a": [1, 2]}', '{1,NULL,3}', '{"a,b","c\"d","e\\f",NULL}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', 'quote " back \ comma , paren ( )', true,
  '23:59:59.999999', '1 year 2 months 3 days 04:05:06'),
 (2, -0.0000000001, 'NaN', '0001-01-01 00:00:00+00', '1970-01-01', '0001-01-01', '[]', '{}', '{}', '{}',
  NULL, '\x', '', false, '00:00', '-1 day'),
 (3, NULL, '-Infinity', NULL, NULL, NULL, 'null', '"s"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""
CHANGES = r"""
UPDATE typed SET n = n + 1, jb = jb || '{"c": "ü"}', ints = ints || 4, b = b || '\x01'::bytea,
  t = t || ' ✓', iv = iv * 2 WHERE id IN (1, 2);
INSERT INTO typed VALUES (4, 1e-10, 1e300, '2262-04-11 23:47:16.854775+00', '9999-12-31 23:59:59',
  '9999-12-31', '{"x": "y\"z"}', '[1, "2", null]', '{-2147483648,2147483647}', '{""}',
  '00000000-0000-0000-0000-000000000000', '\xdeadbeef', E'tab\there\nnewline', NULL, '12:00', '0');
DELETE FROM typed WHERE id = 3;
"""
COLUMNS = "id, n, nf, ts, tsn, d, j, jb, ints, texts, u, b, t, flag, tm, iv"


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_cdc_lands_what_a_full_load_lands(
    source, file_lake, tmp_path: Path, monkeypatch, backend: str
):
    """auto: the FULL load reads through ConnectorX and the CDC run types its changes through
    it too; pyarrow (INGEST_BACKEND): both through psycopg2."""
    monkeypatch.setenv("INGEST_BACKEND", backend)
    for name in (CDC, FULL):
        set_source_env(monkeypatch, name, **source.secrets())
    source.execute(TYPED)
    source.execute(ROWS)
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            *TABLE_JOB,
            "primary_key",
        )
        + "\n"
        f"c,Y,postgresql,{CDC},public,typed,CDC,\nf,Y,postgresql,{FULL},public,typed,FULL,id\n",
        encoding="utf-8",
    )

    def run_and_compare(run_id: str) -> None:
        args = ["run", "--config", str(path), "--destination", file_lake, "--run-id", run_id]
        assert main(args) == 0
        for left, right in ((CDC, FULL), (FULL, CDC)):
            extra = view(
                file_lake,
                f"SELECT {COLUMNS} FROM {left}.typed EXCEPT SELECT {COLUMNS} FROM {right}.typed",
            )
            assert extra == [], f"in {left} and not in {right}: {extra}"
        assert view(file_lake, f"SELECT count(*) FROM {CDC}.typed") == [
            (source.query("SELECT count(*) FROM typed")[0][0],)
        ]

    run_and_compare("r1")  # the first copy
    source.execute(CHANGES)
    run_and_compare("r2")  # the stream
    cdc, full = read_lake_table(file_lake, CDC, "typed"), read_lake_table(file_lake, FULL, "typed")
    for name in COLUMNS.split(", "):
        assert cdc.schema.field(name).type == full.schema.field(name).type, name
