"""Late rows: what a job's `lookback` re-reads below its last watermark.

With `lookback` a run reads from the last watermark minus the lookback (dlt's `lag`): rows that
committed after the previous run with a watermark below its last one (a long transaction, a
clock behind, a batch job stamping an earlier time) are caught. The rows of that window that the
lake already holds, the same version of the same key, are not landed again; the others land and
are counted as late rows (audit `late_rows`). The versions the lake holds in the window are read
once from its current state (`ingest.views.state`) before the run reads the source: their number
follows the table's changes within the lookback, not the table's size.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest.views.dialects import quote_double


class LookbackFilter:
    """Drops re-read rows the lake holds (same key, same watermark), counts the late ones."""

    def __init__(self, cursor: str, keys: tuple[str, ...], before: Any, known: set[tuple]):
        self.cursor = cursor.lower()
        self.keys = tuple(k.lower() for k in keys)
        self.before = before
        self.known = known
        self.reread = 0
        self.late = 0

    def __call__(self, item: Any) -> Any:
        names = getattr(item, "column_names", None)
        if names is None or item.num_rows == 0 or self.before is None:
            return item
        by_lower = {n.lower(): n for n in names}
        if self.cursor not in by_lower or any(k not in by_lower for k in self.keys):
            return item
        values = item.column(by_lower[self.cursor])
        below = pc.fill_null(pc.less(values, pa.scalar(self.before, type=values.type)), False)
        if not pc.any(below).as_py():
            return item
        rows = item.filter(below)
        columns = [rows.column(by_lower[k]).to_pylist() for k in self.keys]
        columns.append(rows.column(by_lower[self.cursor]).to_pylist())
        seen = [tuple(version) in self.known for version in zip(*columns, strict=True)]
        self.reread += sum(seen)
        self.late += len(seen) - sum(seen)
        flags = iter(seen)
        keep = [not flag or not next(flags) for flag in below.to_pylist()]
        return item.filter(pa.array(keep))


def known_versions(
    state: Any, connection: Any, watermark: str, start: Any, before: Any
) -> set[tuple]:
    """(key..., watermark) of the lake's current rows with `start <= watermark < before`."""
    q = quote_double
    columns = ", ".join(q(k) for k in (*state.keys, watermark))
    sql = (
        f"SELECT {columns} FROM ({state.keys_sql}) AS s "
        f"WHERE {q(watermark)} >= CAST(? AS {state.duckdb_type(watermark)}) "
        f"AND {q(watermark)} < CAST(? AS {state.duckdb_type(watermark)})"
    )
    return {tuple(row) for row in connection.execute(sql, [start, before]).fetchall()}
