"""The lake side of a CDC run's count (`ingest.checks.cdc_count`): the base's rows are left
unranked only when the files' statistics show every later version above them; a later load
at or below them, a file without statistics or with a NULL `_lsn`: ranked. The counts
themselves are checked against the source in tests/cdc/test_cdc_reconcile.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.checks.cdc_count import _later_above, _lsn_stats
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
    assert _lsn_stats(connection, dest, base) == ("0A.01", "0C.01")
    highest = "0C.01"
    assert _later_above(connection, dest, view_of(("b", base), ("1", [above])), "b", highest)
    assert _later_above(connection, dest, view_of(("b", base)), "b", highest)  # nothing later
    for later in (below, unknown, null):
        view = view_of(("b", base), ("1", [above]), ("2", [later]))
        assert not _later_above(connection, dest, view, "b", highest), later
    assert _lsn_stats(connection, dest, [unknown]) is None
    assert _lsn_stats(connection, dest, [write(tmp_path, "b3.parquet", [None, "0A.01"])]) is None
