"""The job's state does not grow with the rows that share the last watermark value.

A million rows with one `updated_at` (a column added with `DEFAULT now()`, a bulk load): dlt's
own de-duplication would keep a hash of each of them in the state committed to the lake (tens
of MB); the engine keeps a count (`ingest.checks.boundary`). The state is read back from the
lake as the next run restores it. (bench/boundary.py prints the sizes, times and memory.)
"""

from __future__ import annotations

import json

from ingest.lake import ledger
from ingest.lake.destination import Destination
from ingest.lake.layout import STATE_DIR
from tests.fixtures.orders import SOURCE, job, run

ROWS = 1_000_000
#: the whole decompressed state of the job, ledger included, stays under this
STATE_LIMIT = 64 * 1024


def committed_state(lake: str, pipeline: str) -> tuple[int, dict]:
    """The job's newest state file in the lake: its size, and the state it holds."""
    from dlt.common.versioned_state import decompress_state

    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    files = [p for p in fs.ls(dest.path(SOURCE, STATE_DIR), detail=False)]
    mine = [p for p in files if p.rsplit("/", 1)[-1].startswith(f"{pipeline}__")]
    assert mine, f"no state file of {pipeline} in {files}"
    # <pipeline>__<load id>__<hash>.jsonl
    newest = max(
        mine, key=lambda p: float(p.rsplit("/", 1)[-1][len(pipeline) + 2 :].split("__")[0])
    )
    with fs.open(newest, "r", encoding="utf-8") as handle:
        text = handle.read()
    return len(text), decompress_state(json.loads(text)["state"])


def test_a_million_rows_at_one_watermark_keep_the_state_small(pg, file_lake, monkeypatch):
    pg.execute(
        "CREATE TABLE stamped AS SELECT g::bigint AS id, "
        "timestamptz '2024-06-01 12:00:00+00' AS updated_at "
        f"FROM generate_series(1, {ROWS}) g"
    )
    pg.execute("ALTER TABLE stamped ADD PRIMARY KEY (id)")
    pg.use_as(monkeypatch, SOURCE)
    config = job(pg, "stamped", primary_key=("id",))

    first = run(config, file_lake, "r1")
    assert (first["status"], first["rows_loaded"], first["reconciled"]) == (
        "SUCCESS",
        ROWS,
        "MATCH",
    ), first
    stored, state = committed_state(file_lake, config.pipeline_name)
    size = len(json.dumps(state, default=str))
    assert size < STATE_LIMIT, f"state of {size:,} bytes for {ROWS:,} rows at one watermark"
    assert stored < STATE_LIMIT
    assert ledger.boundary(state) == ledger.Boundary("2024-06-01T12:00:00+00:00", ROWS, None)

    # a few new rows later: only they are read and landed, and the state stays small
    pg.execute(
        "INSERT INTO stamped SELECT g, timestamptz '2024-06-02 00:00:00+00' "
        f"FROM generate_series({ROWS + 1}, {ROWS + 5}) g"
    )
    second = run(config, file_lake, "r2")
    assert (second["status"], second["rows_loaded"]) == ("SUCCESS", 5), second
    _, state = committed_state(file_lake, config.pipeline_name)
    assert len(json.dumps(state, default=str)) < STATE_LIMIT
