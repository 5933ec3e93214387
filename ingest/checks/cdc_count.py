"""The whole-table reconciliation of a CDC run: the source's row count against the rows of the
table's current state in the lake after the load, every run.

The source side (`ingest.sources.cdc.snapshot`): counted in a REPEATABLE READ snapshot taken
right before the run's end marker; the transactions the run read that the snapshot did not see
(they committed between the two) add their net rows. So a quiet source gives exactly the
lake's rows, and one written during the run too: the comparison is exact. It is not made when
the run stopped before its end position (`INGEST_CDC_MAX_CHANGES` / `INGEST_CDC_MAX_BYTES`:
the snapshot holds changes the next run reads) or when a TRUNCATE committed after the snapshot:
then the audit says SKIPPED with what was seen.

The lake side counts the rows of the current state, ranked as the views rank a key's versions
(`_lsn`, then the load, then a marker last: `ingest.views.dialects`), at the cost of the run's
changes rather than of the table: when one load holds one row per key and no delete marker,
the state is that load's rows (the files' own count) less those whose key a later load changed,
plus the changed keys whose newest version is not a marker: one scan of that load's key column
(10M rows and 100,000 changed keys: ~0.4 s here; ranking every key took ~8 s). Such a load is
the compacted base, else the first copy: its rows all carry one position (the slot's consistent
point) and no delete marker, which the files' Parquet statistics say without reading them (a
copy made again over a lake holds delete markers: not one). Otherwise every key is ranked
(`TableState.keys_sql`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.views.definition import DELETED, Part, ViewDef
from ingest.views.dialects import LakeUrls, literal_sql, quote_double
from ingest.views.state import TableState, current_state, state_connection
from ingest.vocabulary import LSN, Reconciled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeRows:
    rows: int
    #: how the state was counted (for the audit's note)
    how: str


def lake_rows(
    dest: Destination, job: JobConfig, memory_mb: int, spill_dir: Path
) -> LakeRows | None:
    """Rows of a CDC table's current state (None: nothing committed yet)."""
    state = current_state(dest, job)
    if state is None:
        return None
    connection = state_connection(dest, memory_mb, spill_dir)
    try:
        view = state.view
        base, position, how = view.base_load, None, "from the compacted base"
        if base is None:
            (base, position), how = _first_copy(connection, dest, view), "from the first copy"
        else:
            position = _below_later(connection, dest, view, base)
        if base is None:
            sql, how = f"SELECT count(*) FROM ({state.keys_sql}) AS s", "every key ranked"
        else:
            sql = _count_from(state, LakeUrls.of(dest), base, position)
        return LakeRows(int(connection.execute(sql).fetchone()[0]), how)
    finally:
        connection.close()


def _count_from(state: TableState, urls: LakeUrls, base: str, position: str | None) -> str:
    """The state's rows, from a load `base` that holds one row per key and no marker: its
    rows (the files' own count), less the keys a later load changed (`touched`: one scan of
    its key column against the later keys), plus the later keys whose newest version, the
    base's row included, is not a marker. `position`: the `_lsn` of every row of the base
    (the first copy's), so its rank needs no read; None: read with the key."""
    view = state.view
    q = quote_double
    keys = [q(k) for k in view.keys]

    def typed(alias: str = "") -> str:
        return ", ".join(
            f"CAST({alias}{q(k)} AS {state.duckdb_type(k)}) AS {q(k)}" for k in view.keys
        )

    def load_number(part: Part) -> str:
        return f"CAST({literal_sql(str(part.load_id))} AS DECIMAL(20,7))"

    def files(part: Part) -> str:
        return "[" + ", ".join(literal_sql(urls.url("duckdb", f)) for f in part.files) + "]"

    def rank(lsn: str, load: str, deleted: str) -> str:
        return f"struct_pack(n := {lsn} IS NOT NULL, w := {lsn}, l := {load}, d := {deleted})"

    later = []
    for part in (p for p in view.parts if p.load_id != base):
        lsn = f"CAST({q(LSN)} AS VARCHAR)" if LSN in part.columns else "CAST(NULL AS VARCHAR)"
        deleted = f"COALESCE({q(DELETED)}, false)" if DELETED in part.columns else "false"
        later.append(
            f"SELECT {typed()}, {rank(lsn, load_number(part), deleted)} AS r "
            f"FROM read_parquet({files(part)}, union_by_name = true)"
        )
    if not later:  # nothing after the base: its rows are the state
        empty = ", ".join(f"CAST(NULL AS {state.duckdb_type(k)}) AS {q(k)}" for k in view.keys)
        later.append(
            f"SELECT {empty}, {rank('CAST(NULL AS VARCHAR)', '0.0', 'false')} AS r WHERE false"
        )
    bases = [p for p in view.parts if p.load_id == base]
    reads = []
    for part in bases:
        if position is not None:
            base_rank = rank(literal_sql(position), load_number(part), "false")
        else:
            lsn = f"CAST(b.{q(LSN)} AS VARCHAR)" if LSN in part.columns else "CAST(NULL AS VARCHAR)"
            base_rank = rank(lsn, load_number(part), "false")
        on = " AND ".join(f"x.{q(k)} = CAST(b.{q(k)} AS {state.duckdb_type(k)})" for k in view.keys)
        reads.append(
            f"SELECT {', '.join(f'x.{k}' for k in keys)}, {base_rank} AS br "
            f"FROM read_parquet({files(part)}, union_by_name = true) AS b JOIN newest AS x ON {on}"
        )
    counts = " + ".join(
        f"(SELECT count(*) FROM read_parquet({files(part)}, union_by_name = true))"
        for part in bases
    )
    match = " AND ".join(f"t.{k} = x.{k}" for k in keys)
    return (
        f"WITH newest AS MATERIALIZED (\nSELECT {', '.join(keys)}, max(r) AS r FROM (\n"
        + "\nUNION ALL\n".join(later)
        + f"\n) AS v GROUP BY {', '.join(keys)}\n), touched AS MATERIALIZED (\n"
        + "\nUNION ALL\n".join(reads)
        + f"\n)\nSELECT {counts} - (SELECT count(*) FROM touched) + (SELECT count(*) FROM newest "
        f"AS x LEFT JOIN touched AS t ON {match} WHERE NOT (CASE WHEN t.{keys[0]} IS NULL "
        "THEN x.r ELSE greatest(x.r, t.br) END).d)"
    )


def _first_copy(
    connection: Any, dest: Destination, view: ViewDef
) -> tuple[str, str] | tuple[None, None]:
    """The view's first load and its one `_lsn` when its rows all carry that one and no
    delete marker (the first copy: one row per key), by its files' Parquet statistics."""
    if view.order_by != LSN or not view.parts:
        return None, None
    first = view.parts[0].load_id
    files = [f for p in view.parts if p.load_id == first for f in p.files]
    if first is None or not files:
        return None, None
    urls = LakeUrls.of(dest)
    paths = ", ".join(literal_sql(urls.url("duckdb", f)) for f in files)
    found = connection.execute(
        "SELECT path_in_schema, min(stats_min_value), max(stats_max_value), "
        "bool_or(stats_min_value IS NULL OR stats_max_value IS NULL), sum(stats_null_count) "
        f"FROM parquet_metadata([{paths}]) WHERE path_in_schema IN (?, ?) GROUP BY 1",
        [LSN, DELETED],
    ).fetchall()
    stats = {row[0]: row[1:] for row in found}
    lsn, deleted = stats.get(LSN), stats.get(DELETED)
    # every `_lsn` known and equal; `_deleted` known (statistics kept) and never true
    if lsn is None or lsn[2] or lsn[3] or lsn[0] != lsn[1]:
        return None, None
    if deleted is not None and (deleted[2] or str(deleted[1]).lower() != "false"):
        return None, None
    return first, str(lsn[0])


def _lsn_stats(connection: Any, urls: LakeUrls, files: list[str]) -> tuple[str, str] | None:
    """(lowest, highest) `_lsn` of `files` by their Parquet statistics; None when a file has
    no such column, a NULL, or no statistics."""
    if not files:
        return None
    paths = ", ".join(literal_sql(urls.url("duckdb", f)) for f in files)
    found = connection.execute(
        "SELECT count(DISTINCT file_name), min(stats_min_value), max(stats_max_value), "
        "bool_or(stats_min_value IS NULL OR stats_max_value IS NULL OR stats_null_count IS NULL "
        f"OR stats_null_count > 0) FROM parquet_metadata([{paths}]) WHERE path_in_schema = ?",
        [LSN],
    ).fetchone()
    if found is None or found[0] != len(set(files)) or found[3] or found[1] is None:
        return None
    return str(found[1]), str(found[2])


def _below_later(connection: Any, dest: Destination, view: ViewDef, base: str) -> str | None:
    """The compacted base's highest `_lsn` when every later load's versions carry a higher
    one (by the files' statistics: a CDC stream only moves forward): then a later version
    of a key always ranks above the base's row, and the base's `_lsn` needs no read (its key
    column is all the count reads). None: read it with the key."""
    urls = LakeUrls.of(dest)
    bases = [f for p in view.parts if p.load_id == base for f in p.files]
    later = [f for p in view.parts if p.load_id != base for f in p.files]
    below, above = _lsn_stats(connection, urls, bases), _lsn_stats(connection, urls, later)
    if below is None or (later and (above is None or above[0] <= below[1])):
        return None
    return below[1]


@dataclass(frozen=True)
class CdcCount:
    """What the source and the lake held after one CDC run."""

    #: the source's rows in the snapshot
    source: int
    #: the transactions read that the snapshot did not see, and their net rows
    late_transactions: int
    late_net: int
    lake: LakeRows
    snapshot: str

    @property
    def expected(self) -> int:
        return self.source + self.late_net

    @property
    def reconciled(self) -> Reconciled:
        return Reconciled.MATCH if self.expected == self.lake.rows else Reconciled.MISMATCH

    def note(self) -> str:
        late = (
            f" + {self.late_net:+d} from {self.late_transactions} transaction(s) committed after "
            "it and read by this run"
            if self.late_transactions
            else ""
        )
        return (
            f"source {self.source} row(s) in a REPEATABLE READ snapshot ({self.snapshot}) taken "
            f"before the run's end position{late}; lake {self.lake.rows} row(s) in the current "
            f"state ({self.lake.how})"
        )
