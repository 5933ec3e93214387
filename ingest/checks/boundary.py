"""The boundary of an INCREMENTAL job: the rows at its highest loaded watermark, in bounded state.

A run reads `watermark >= last` (the range is closed): a row that arrives after the last load
with exactly the last watermark value is not lost. The rows at `last` that the previous load
landed come back; each is told apart by a hash of the whole row, kept in the job's state for at
most `CAP` rows (dlt would keep one hash per boundary row, however many: 82 MB of state for a
table whose 6 million rows share one timestamp). So the state and the memory never grow with the
number of rows that share the last watermark:

- a stored boundary of `COUNT_FROM` rows or more is first counted at the source (one indexed
  count of `watermark = last`); unchanged, the run reads `watermark > last` and re-reads none;
- a boundary over `CAP` rows keeps no hashes. Should its count change (rows arrived with the last
  value), a job with a key re-lands the boundary rows (harmless: its current view takes one
  version per key); a job without one cannot tell the new rows from the old ones: it lands none
  of them and reconciliation says so (`BOUNDARY_ROWS_DROPPED`, with the numbers and what to do).

The tracker is a map step after dlt's incremental filter (`ingest.job.progress.Progress`): it
drops re-read boundary rows it knows, records the new boundary in the ledger entry of the state
that dlt commits with the load (`ingest.lake.ledger`), and counts what it dropped, which
reconciliation adds back (`ReadWindow`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest.lake import ledger
from ingest.lake.ledger import Boundary

#: boundary rows whose hashes the state keeps at most
CAP = 10_000
#: a stored boundary this big is counted at the source before the read (see module doc)
COUNT_FROM = 1_000


def row_hashes(table: Any, columns: tuple[str, ...] = ()) -> list[str]:
    """A hash of each row of an Arrow table: its non-NULL values by column name (dlt's own
    columns left out; only `columns` when given: a keyed table's version is its key and its
    watermark), so it is the same for the same row read by either read path, in any run, and
    after a column was added to the table (NULL in the rows loaded before)."""
    wanted = {c.lower() for c in columns}
    names: list[str] = sorted(
        n
        for n in table.column_names
        if not n.startswith("_dlt") and (not wanted or n.lower() in wanted)
    )
    by_column = [table.column(n).to_pylist() for n in names]
    hashes = []
    for values in zip(*by_column, strict=True):
        pairs = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
        hashes.append(hashlib.blake2b(repr(pairs).encode("utf-8"), digest_size=12).hexdigest())
    return hashes


@dataclass(frozen=True)
class ReadWindow:
    """How an INCREMENTAL load read its source, for reconciliation: from `start` (closed or
    not), and the re-read boundary rows the tracker dropped."""

    start: Any = None
    closed: bool = True
    #: re-read rows at the old boundary that had landed before (known by their hash)
    dropped: int = 0
    #: rows at the old boundary that could not be told apart (a keyless boundary over CAP)
    unverified: int = 0
    #: rows the lookback re-read that the lake held (same key and watermark): not landed
    reread: int = 0
    #: rows the lookback caught: below the last watermark, not in the lake before
    late: int = 0


class BoundaryTracker:
    """See module doc. `last`: the stored cursor value (typed); `stored`: the stored boundary
    record; `keys`: the job's key columns (a version of a keyed row is its key and its
    watermark; re-landing boundary rows is harmless), () for a table without one."""

    def __init__(self, cursor: str, last: Any, stored: Boundary | None, keys: tuple[str, ...]):
        keyed = bool(keys)
        self.identity = (*keys, cursor) if keyed else ()
        self.cursor = cursor.lower()
        self.last = last
        self.last_text = ledger.watermark_text(last)
        self.stored = stored if stored is not None and stored.value == self.last_text else None
        self.keyed = keyed
        self.value: Any = None
        self.rows = 0
        self.hashes: list[str] | None = []
        self.dropped = 0
        self.unverified = 0
        self._known = Counter(self.stored.hashes or ()) if self.stored else Counter()

    def _column(self, item: Any) -> str | None:
        names = getattr(item, "column_names", None)
        if names is None:  # not Arrow (REST rows): no boundary record
            return None
        return next((n for n in names if n.lower() == self.cursor), None)

    def __call__(self, item: Any) -> Any:
        column = self._column(item)
        if column is None or item.num_rows == 0:
            return item
        item = self._drop_known(item, column)
        if item.num_rows:
            self._track(item, column)
        return item

    def _drop_known(self, item: Any, column: str) -> Any:
        """Re-read rows at the stored boundary that landed before: dropped (see module doc)."""
        if self.stored is None or self.last is None:
            return item
        values = item.column(column)
        at_last = pc.equal(values, pa.scalar(self.last, type=values.type))
        at_last = pc.fill_null(at_last, False)
        count = int(pc.sum(at_last).as_py() or 0)
        if not count:
            return item
        if self.stored.hashes is None:  # over CAP: no way to tell rows apart
            if self.keyed:
                return item  # re-landed: the current view takes one version per key
            self.unverified += count
            return item.filter(pc.invert(at_last))
        hashes = iter(row_hashes(item.filter(at_last), self.identity))
        keep = [not flag or not self._forget(next(hashes)) for flag in at_last.to_pylist()]
        kept = item.filter(pa.array(keep))
        self.dropped += item.num_rows - kept.num_rows
        return kept

    def _forget(self, row_hash: str) -> bool:
        """Whether a re-read row is one that landed before: each stored hash matches one row
        (two identical rows at the boundary were loaded twice; a third identical one is new)."""
        if self._known[row_hash] > 0:
            self._known[row_hash] -= 1
            return True
        return False

    def _track(self, item: Any, column: str) -> None:
        values = item.column(column)
        highest = pc.max(values)
        if not highest.is_valid:
            return
        value = highest.as_py()
        if self.value is not None and value < self.value:
            return
        if self.value is None or value > self.value:
            self.value, self.rows, self.hashes = value, 0, []
        at_highest = pc.fill_null(pc.equal(values, highest), False)
        count = int(pc.sum(at_highest).as_py() or 0)
        self.rows += count
        if self.hashes is not None:
            if len(self.hashes) + count > CAP:
                self.hashes = None
            else:
                self.hashes.extend(row_hashes(item.filter(at_highest), self.identity))
        self._record()

    def _record(self) -> None:
        rows, hashes = self.rows, self.hashes
        if self.stored is not None and ledger.watermark_text(self.value) == self.last_text:
            # only more rows at the old boundary: add them to it
            rows += self.stored.rows
            if hashes is not None and self.stored.hashes is not None:
                hashes = [*self.stored.hashes, *hashes]
                if len(hashes) > CAP:
                    hashes = None
            else:
                hashes = None
        ledger.record_boundary(self.value, rows, hashes)

    def window(self, start: Any, closed: bool, lookback: Any = None) -> ReadWindow:
        dropped, unverified = self.dropped, self.unverified
        if unverified and self.stored is not None:
            # of the boundary rows that could not be told apart, the stored ones had landed
            known = min(unverified, self.stored.rows)
            dropped, unverified = dropped + known, unverified - known
        reread = lookback.reread if lookback is not None else 0
        late = lookback.late if lookback is not None else 0
        return ReadWindow(start, closed, dropped, unverified, reread, late)
