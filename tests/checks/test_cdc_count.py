"""The lake side of a CDC run's count (`ingest.checks.cdc_count`): a compacted base's `_lsn`
is left unread only when the files' statistics show every later version above it; a later
load at or below it, a file without statistics or with a NULL, and the base's rows are read."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.checks.cdc_count import _below_later
from ingest.lake.destination import Destination
from ingest.views.definition import Part


def write(root: Path, name: str, lsns: list[str | None], *, statistics: bool = True) -> str:
    table = pa.table({"id": list(range(len(lsns))), "_lsn": pa.array(lsns, pa.string())})
    pq.write_table(table, root / name, write_statistics=statistics)
    return name


def view_of(*parts: tuple[str, list[str]]) -> SimpleNamespace:
    return SimpleNamespace(
        parts=[Part(load, tuple(files), frozenset({"id", "_lsn"})) for load, files in parts]
    )


def test_the_base_is_left_unread_only_below_every_later_version(tmp_path: Path):
    dest = Destination.from_url(tmp_path.as_uri())
    connection = duckdb.connect()
    base = [
        write(tmp_path, "b1.parquet", ["0A.01", "0B.01"]),
        write(tmp_path, "b2.parquet", ["0C.01"]),
    ]
    above = write(tmp_path, "l1.parquet", ["0D.01", "0E.02"])
    below = write(tmp_path, "l2.parquet", ["0C.01"])
    unknown = write(tmp_path, "l3.parquet", ["0F.01"], statistics=False)
    null = write(tmp_path, "l4.parquet", ["0F.01", None])
    assert _below_later(connection, dest, view_of(("b", base), ("1", [above])), "b") == "0C.01"
    assert _below_later(connection, dest, view_of(("b", base)), "b") == "0C.01"  # nothing later
    for later in (below, unknown, null):
        view = view_of(("b", base), ("1", [above]), ("2", [later]))
        assert _below_later(connection, dest, view, "b") is None, later
    null_base = write(tmp_path, "b3.parquet", [None, "0A.01"])
    assert _below_later(connection, dest, view_of(("b", [null_base]), ("1", [above])), "b") is None
