"""A batch of change rows as one text[] constant (`ingest.sources.cdc.rows`): the server reads
back exactly the values, NULLs and empty strings each row held, whatever characters they hold
(quotes, backslashes, commas, parentheses, braces, dollar signs, newlines, non-ASCII), through
both forms (the array constant of the ConnectorX path, the record literals of the psycopg2
path); a value holding NUL, which PostgreSQL text cannot, is refused."""

from __future__ import annotations

import random

import pytest

from ingest.errors import JobError
from ingest.sources.cdc.rows import record_literals, row_text, text_array_sql

HARD = ["", '"', "\\", ",", "(", ")", "{", "}", "$cdc$", " ", "\n", "NULL", '""', "é✓", "'", "a"]


def rows_of(seed: int, count: int, width: int) -> list[tuple[str | None, ...]]:
    rng = random.Random(seed)
    return [
        tuple(
            None
            if rng.random() < 0.2
            else "".join(rng.choice(HARD) for _ in range(rng.randint(0, 5)))
            for _ in range(width)
        )
        for _ in range(count)
    ]


def test_the_server_reads_back_every_row_as_it_was(pg):
    pg.execute("CREATE TYPE r3 AS (a text, b text, c text)")
    rows = [*rows_of(7, 2000, 3), (None, None, None), ("", "", ""), ('"', "\\", "$cdc$")]
    texts = [row_text(r) for r in rows]
    nulls = sum(r.count(None) for r in rows)
    array = text_array_sql(texts, 3, nulls)
    back = pg.query(
        f"SELECT (CAST(u.t AS r3)).* FROM unnest({array}) WITH ORDINALITY AS u(t, n) ORDER BY n"
    )
    assert back == rows
    literals = record_literals(texts, 3, nulls)
    back = pg.query(
        "SELECT (CAST(u.t AS r3)).* FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
        (literals,),
    )
    assert back == rows


def test_a_value_holding_nul_is_refused():
    texts = [row_text(("a", None)), row_text(("b\x00c", "d"))]
    with pytest.raises(JobError, match="NUL"):
        text_array_sql(texts, 2, 1)
    with pytest.raises(JobError, match="NUL"):
        record_literals(texts, 2, 1)


def test_a_value_that_is_not_text_is_written_as_its_text():
    assert row_text(("1", None, 2)) == row_text(("1", None, "2"))
