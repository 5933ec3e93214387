"""Split loads: one big table read as key ranges by several activities, committed as one load.

A whole-table read (a FULL load, the first load or a full refresh of an INCREMENTAL job) of a
SQL table is split when the job sets `split` (a number of chunks) or the source's catalogue
estimates the table above INGEST_SPLIT_ROWS (chunks of about that many rows, at most
INGEST_SPLIT_MAX_CHUNKS). The ranges are cut on an integer, date or timestamp column (the
one-column primary key, or `split_column`) between its MIN and MAX.

The steps (each an activity on Azure, a worker task locally; `ingest.job.chunk`):
1. **start**: the job's task takes the job's lease, cleans up, and instead of loading writes
   the split load as `pending` into the table's commit log (`ingest.lake.commits`: fenced by
   the lease) with a new load id above every committed one and a random token; it returns the
   `SplitPlan` and gives the lease back.
2. **chunks**: each reads its key range and writes its files under the split load's id, named
   `<load_id>.c<NNN>a<attempt>x<file>.parquet`, into the staging folder
   `<dataset>/_chunks/<table>/` (outside the table's folder: no reader lists or globs them, and
   no attempt can add a file to the table itself). A chunk records "landed: files, rows"
   into the pending load by a fenced write of the log, after checking the token: a chunk of a
   split load that was abandoned (another writer took the job over) never lands. A chunk that
   finds itself landed does nothing; one run again after a partial write first removes its
   files; an attempt that finds its chunk landed by another attempt, or its split load gone,
   removes the files it wrote (`ingest.job.chunk`).
3. **commit**: the job's task again, under the lease: every chunk landed, the staged files
   the landings list are moved into the load's date folder of the table (a rename; on blob
   storage a server-side copy), staged files no landing lists are removed, then a normal load
   with the same load id (FULL: no rows, its empty snapshot file; INCREMENTAL: the rows from
   `watermark_below` up, the chunks read below it) writes the state, the commit (which ends
   `pending`) and the completion marker: the whole load becomes visible at once. A chunk that
   did not land: the split load is abandoned (its files go with the next clean-up) and the
   job FAILED, naming the chunks.

While a split load is pending, any other writer of the job (another run, a backfill) finds
the table busy (`LeaseBusy`, naming the owner), as with a held lease; a split load nobody
started or landed a chunk of for INGEST_SPLIT_STALE_S may be abandoned by the next writer.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from typing import Any

from ingest.checks.reconcile import Outcome
from ingest.errors import JobError, RetriableJobError
from ingest.job.split_snapshot import importing_engine
from ingest.lake.commits import CommitLog, Pending, next_load_id
from ingest.lake.destination import Destination
from ingest.lake.lease import JobLease, LeaseBusy
from ingest.lake.loads import load_files, move_into_load, staged_files
from ingest.model.split import SplitPlan
from ingest.model.task import Task
from ingest.settings import Settings
from ingest.vocabulary import Reconciled, TableFormat

log = logging.getLogger(__name__)


def chunk_prefix(index: int, attempt: str = "") -> str:
    """The start of the file ids of chunk `index` (`c007`), and of one attempt at it
    (`c007a1b2c3d4x`): no chunk's or attempt's file clashes with another's, a chunk run again
    finds every earlier attempt's files, and an attempt knows its own."""
    return f"c{index:03d}" + (f"a{attempt}x" if attempt else "")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def chunks_wanted(job: Any, estimate: int | None, settings: Settings) -> int:
    """How many chunks a whole-table read of `job` is split into (0: not split)."""
    if job.split:
        return int(job.split)
    if settings.split_rows <= 0 or estimate is None or estimate <= settings.split_rows:
        return 0
    return min(settings.split_max_chunks, math.ceil(estimate / settings.split_rows))


def cut_bounds(
    lowest: Any, highest: Any, chunks: int, quantiles: list[Any] | None = None
) -> tuple[str, ...]:
    """The inner bounds of `chunks` ranges between `lowest` and `highest` (ints, dates,
    timestamps; ascending, no duplicates), as text; () when not splittable. With `quantiles`
    (the column's values at equal steps of its rows, typed) ranges of about equal rows, else
    of equal width."""
    if lowest is None or highest is None or chunks < 2 or not lowest < highest:
        return ()
    cuts: list[Any] = []
    if isinstance(lowest, bool) or not isinstance(
        lowest, int | dt.datetime | dt.date
    ):  # decimals, floats, text: ranges of those are not cut
        return ()
    if quantiles and len(quantiles) > chunks:
        steps = len(quantiles) - 1
        cuts = [quantiles[round(steps * k / chunks)] for k in range(1, chunks)]
    elif isinstance(lowest, int):
        width = highest - lowest + 1
        cuts = [lowest + (width * k) // chunks for k in range(1, chunks)]
    elif isinstance(lowest, dt.datetime):
        span = highest - lowest
        cuts = [lowest + span * k / chunks for k in range(1, chunks)]
    else:
        days = (highest - lowest).days + 1
        cuts = [lowest + dt.timedelta(days=(days * k) // chunks) for k in range(1, chunks)]
    unique: list[Any] = []
    for cut in cuts:
        if lowest < cut <= highest and (not unique or cut > unique[-1]):
            unique.append(cut)
    return tuple(cut.isoformat() if hasattr(cut, "isoformat") else str(cut) for cut in unique)


def whole_table(task: Task, stored: Any) -> bool:
    """Whether this load reads the whole table or a range of it (only those split): FULL, an
    INCREMENTAL job's first load or full refresh, a backfill (its watermark range)."""
    if task.backfill:
        return True
    return not task.job.is_incremental or stored is None


def plan_split(
    task: Task,
    settings: Settings,
    builder: Any,
    engine: Any,
    lease: JobLease,
    commit_log: CommitLog,
) -> SplitPlan | None:
    """Under the job's lease: the split load of this task, written as pending into the commit
    log (step 1, see module doc); None when the load is not split."""
    job = task.job
    if job.table_format == TableFormat.DELTA or not hasattr(builder, "key_bounds"):
        return None
    estimate = None if job.split else builder.estimated_rows(engine, job)
    chunks = chunks_wanted(job, estimate, settings)
    if chunks < 2:
        return None
    column = builder.split_key(engine, job)
    if column is None:
        if job.split:
            raise JobError(
                f"job {job.job_id}: split needs one integer, date or timestamp column to cut "
                f"ranges on: table {job.table_name} has no one-column primary key; set "
                f"split_column in {job.origin or 'the config'}"
            )
        log.info("job %s: not split (no one-column key; set split_column)", job.job_id)
        return None
    _, lowest, highest, top = builder.key_bounds(engine, job, column)
    continues = job.is_incremental and not task.backfill
    if continues and top is None:
        return None  # no row with a watermark: nothing to split
    bounds = cut_bounds(lowest, highest, chunks, _typed(builder, engine, job, column, lowest))
    if not bounds:
        if job.split and lowest is not None and not isinstance(lowest, int | dt.date):
            raise JobError(
                f"job {job.job_id}: split column {column} is neither an integer nor a date or "
                f"timestamp; name one in split_column in {job.origin or 'the config'}"
            )
        return None
    below = None  # FULL and backfills: the chunks read every row of the load, the commit none
    if continues:
        below = top.isoformat() if hasattr(top, "isoformat") else str(top)
    load_id = next_load_id(repr(round(time.time(), 6)), commit_log.last_load_id)
    plan = SplitPlan(load_id, uuid.uuid4().hex, column, bounds, below)
    recorded = plan.to_dict()
    if counts_ranges(task):  # the source's rows per range as the split load starts
        clock = time.monotonic()
        recorded[COUNTED_KEY] = builder.range_counts(engine, job, column, bounds)
        log.info(
            "job %s: %d ranges counted in %.2f s",
            job.job_id,
            len(bounds) + 1,
            time.monotonic() - clock,
        )
    pending = Pending(
        load_id, task.run_id, task.kind, plan.token, plan.chunks, _now(), plan=recorded
    )
    lease.write_log(commit_log.with_pending(pending))
    log.info(
        "job %s: split into %d chunks on %s (%s .. %s), load %s",
        job.job_id,
        plan.chunks,
        column,
        lowest,
        highest,
        load_id,
    )
    return plan


#: the pending split load's record of its source's rows per range when it started
COUNTED_KEY = "counted"


def counts_ranges(task: Task) -> bool:
    """Whether the split load of `task` is reconciled range by range (`reconcile`): a FULL
    load (an INCREMENTAL one's first load and a backfill count their watermark window)."""
    return not task.job.is_incremental and task.backfill is None


def reconcile(
    builder: Any,
    secrets: Any,
    task: Task,
    plan: SplitPlan,
    pending: Pending,
    snapshots_off: bool = False,
) -> Outcome:
    """The reconciliation of a split FULL load, at its commit: the source's rows per key range
    against the rows each chunk landed.

    - Every chunk read one exported snapshot (`ingest.job.split_snapshot`) and counted its
      range in it: MATCH when every chunk landed its range's rows (the total is one state of
      the source, whether or not the snapshot is still held now). Chunks that landed without
      their counts (an older version) are counted in the snapshot now, if it is still held.
    - Otherwise each chunk (or some: the snapshot's holder ended before they read) read its
      range at its own time: the ranges are counted now and compared with their counts when
      the split load started (`COUNTED_KEY`) and the chunks' rows. MATCH when all three agree
      for every range; when the source changed meanwhile the note names the ranges, the
      counts before and after and what the chunks read (a MISMATCH: the lake may hold no
      single state of the source). A change a count cannot see (a row added and one deleted
      in the same range) is not seen; the note says the load was not read in one state.
    `snapshots_off`: INGEST_SPLIT_SNAPSHOT=off (the note says why no snapshot was read)."""
    job = task.job
    rows = [pending.landed[i].rows if i in pending.landed else 0 for i in range(plan.chunks)]
    read = sum(rows)
    taken = {pending.landed[i].snapshot for i in pending.landed}
    snapshot = taken.pop() if len(taken) == 1 else ""
    before = [int(n) for n in pending.plan.get(COUNTED_KEY) or ()]
    chunks = f"{plan.chunks} chunks"
    started = f" ({sum(before):,} when the split load started)" if before else ""
    in_chunks = [
        pending.landed[i].counted if i in pending.landed else None for i in range(plan.chunks)
    ]
    counted: list[int] = []
    if snapshot and all(n is not None for n in in_chunks):
        counted = [int(n or 0) for n in in_chunks]
    elif snapshot:  # landed without their counts: count in the snapshot if it is still held
        engine = importing_engine(builder, secrets, snapshot)
        clock = time.monotonic()
        try:
            counted = builder.range_counts(engine, job, plan.column, plan.bounds)
            log.info(
                "job %s: %d ranges counted in the snapshot in %.2f s",
                job.job_id,
                plan.chunks,
                time.monotonic() - clock,
            )
        except Exception as exc:  # the snapshot is gone (its holder ended): count now
            log.warning("job %s: snapshot %s not importable: %s", job.job_id, snapshot, exc)
            snapshot = ""
        finally:
            engine.dispose()
    if snapshot:
        total = sum(counted)
        if counted == rows:
            note = (
                f"{chunks} read one exported snapshot of the source, counted in it: {total:,} "
                f"rows{started}"
            )
            return Outcome(Reconciled.MATCH, total, note)
        return Outcome(
            Reconciled.MISMATCH,
            total,
            f"{chunks} read one exported snapshot: source {total:,} rows in it, lake {read:,}; "
            + _ranges(plan, rows, counted),
        )
    engine = builder.engine(secrets)
    clock = time.monotonic()
    try:
        after = builder.range_counts(engine, job, plan.column, plan.bounds)
    finally:
        engine.dispose()
    log.info(
        "job %s: %d ranges counted in %.2f s", job.job_id, plan.chunks, time.monotonic() - clock
    )
    total = sum(after)
    how = _how_read(pending, plan, snapshots_off)
    if before and before != after:
        changed = [i for i in range(plan.chunks) if before[i] != after[i]]
        shown = ", ".join(
            f"chunk {i}: {before[i]:,} -> {after[i]:,}, read {rows[i]:,}" for i in changed[:4]
        )
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        return Outcome(
            Reconciled.MISMATCH,
            total,
            f"source changed during the split load: {sum(before):,} rows when it started, "
            f"{total:,} at its commit, the {chunks} read {read:,} ({how}: the lake may hold no "
            f"single state of the source); ranges that changed: {shown}{more}. Load it again "
            "when the table is quiet (PostgreSQL with INGEST_SPLIT_SNAPSHOT=on reads one "
            "snapshot)",
        )
    if after == rows:
        when = "when the split load started and " if before else ""
        note = f"counted by range {when}at its commit: {total:,} rows; {chunks}, {how}"
        return Outcome(Reconciled.MATCH, total, note)
    return Outcome(
        Reconciled.MISMATCH,
        total,
        f"source {total:,} rows, lake {read:,} ({chunks}, {how}); " + _ranges(plan, rows, after),
    )


def _how_read(pending: Pending, plan: SplitPlan, snapshots_off: bool) -> str:
    """How the chunks of a load not read in one state read their ranges, for its note."""
    held = sorted(i for i, landed in pending.landed.items() if landed.snapshot)
    if not held:
        off = " (INGEST_SPLIT_SNAPSHOT=off)" if snapshots_off else ""
        return f"each read its range at its own time{off}"
    ids = sorted({pending.landed[i].snapshot for i in held})
    shown = ", ".join(str(i) for i in held[:8]) + (" ..." if len(held) > 8 else "")
    return (
        f"not read in one state: {len(held)} of {plan.chunks} read exported snapshot "
        f"{', '.join(ids)} (chunks {shown}), the others their ranges at their own times "
        "(the snapshot's holder ended before they read)"
    )


def _ranges(plan: SplitPlan, rows: list[int], counted: list[int]) -> str:
    differ = [i for i in range(plan.chunks) if rows[i] != counted[i]]
    shown = ", ".join(f"chunk {i}: source {counted[i]:,}, read {rows[i]:,}" for i in differ[:4])
    return f"ranges that differ: {shown}" + (" ..." if len(differ) > 4 else "")


def _typed(builder: Any, engine: Any, job: Any, column: str, like: Any) -> list[Any]:
    """The column's quantiles from the source's statistics, as values of `like`'s type
    (empty when there are none, or one does not parse)."""
    texts = builder.key_quantiles(engine, job, column)
    try:
        if isinstance(like, bool):
            return []
        if isinstance(like, int):
            return [int(t) for t in texts]
        if isinstance(like, dt.datetime):
            values = [dt.datetime.fromisoformat(t) for t in texts]
            if any((v.tzinfo is None) != (like.tzinfo is None) for v in values):
                return []  # not comparable with the column's values: ranges of equal width
            return values
        if isinstance(like, dt.date):
            return [dt.date.fromisoformat(t[:10]) for t in texts]
    except (TypeError, ValueError):
        log.debug("job %s: statistics of %s not usable for ranges", job.job_id, column)
    return []


def resumed(log_: CommitLog | None, task: Task) -> SplitPlan | None:
    """The split load this very task started before (a retried start): its plan again."""
    pending = log_.pending if log_ is not None else None
    if pending is None or not pending.owned_by(task.run_id, task.kind):
        return None
    return SplitPlan.from_dict(pending.plan)


def guard(
    log_: CommitLog | None, task: Task, settings: Settings, lease: JobLease
) -> CommitLog | None:
    """Under the job's lease, before anything else: a split load of another task that is
    pending makes the table busy (LeaseBusy), unless nobody touched it for
    INGEST_SPLIT_STALE_S: then it is abandoned (its chunks never land; the clean-up removes
    its files). Returns the log as it is now."""
    pending = log_.pending if log_ is not None else None
    if log_ is None or pending is None or pending.owned_by(task.run_id, task.kind):
        return log_
    if task.split is not None and pending.token == task.split.token:
        return log_
    touched = dt.datetime.fromisoformat(pending.touched) if pending.touched else None
    age = (dt.datetime.now(dt.UTC) - touched).total_seconds() if touched else math.inf
    if age < settings.split_stale_s:
        raise SplitBusy(lease.name, pending)
    log.warning(
        "abandoning the split load %s of run %s on %s: no chunk started or landed for %.0f s "
        "(INGEST_SPLIT_STALE_S)",
        pending.load_id,
        pending.run_id,
        lease.name,
        age,
    )
    log_ = log_.with_pending(None)
    lease.write_log(log_)
    return log_


def check_pending(log_: CommitLog | None, plan: SplitPlan, lease: JobLease) -> Pending:
    """The pending split load `plan` belongs to; SplitAbandoned when it is not pending."""
    pending = log_.pending if log_ is not None else None
    if pending is None or pending.token != plan.token:
        raise SplitAbandoned(
            f"split load {plan.load_id} of {lease.name} is no longer pending: it was committed "
            "or abandoned (another writer took the job over). Nothing of this chunk counts; "
            "run the job again"
        )
    return pending


class SplitBusy(LeaseBusy):
    """Another task's split load of the job is still landing its chunks: the table is busy."""

    def __init__(self, name: str, pending: Pending):
        self.holder = None
        RetriableJobError.__init__(
            self,
            f"another writer is loading {name}: split load {pending.load_id} of run "
            f"{pending.run_id} ({pending.task}) is still landing its chunks (last touched "
            f"{pending.touched}). Nothing was written; run the job again once it has committed "
            "(or after INGEST_SPLIT_STALE_S without progress, when it may be abandoned)",
        )


class SplitAbandoned(JobError):
    """The split load a chunk or commit belongs to is not pending any more."""


def prepare_commit(
    dest: Destination,
    dataset: str,
    table: str,
    plan: SplitPlan,
    log_: CommitLog,
    lease: JobLease,
) -> tuple[int, int, tuple[str, ...]]:
    """Step 3, under the lease: every chunk landed, their staged files are moved into the
    table, and the load holds only those (a chunk's attempt that died or lost a race leaves
    staged files no landing lists: removed). Only this step, under the lease and before the
    commit, puts files into the table: an attempt of a chunk that writes after the commit
    writes into staging, where nobody reads and the next clean-up removes what it leaves.
    Returns (rows, files, highest watermarks) of the chunks. A chunk that did not land: the
    split load is abandoned and a JobError names the chunks (another attempt of the commit
    cannot help; the job's next run starts a new split load)."""
    pending = check_pending(log_, plan, lease)
    missing = [i for i in range(pending.chunks) if i not in pending.landed]
    if missing:
        lease.write_log(log_.with_pending(None))
        raise JobError(
            f"split load {plan.load_id} of {lease.name}: chunk(s) "
            f"{', '.join(str(i) for i in missing)} of {pending.chunks} did not land; nothing "
            "was committed (the split load is abandoned), run the job again"
        )
    listed = {name for landed in pending.landed.values() for name in landed.files}
    listed_in_place: set[str] = set()
    fs = dest.filesystem()
    for path in load_files(dest, dataset, table, plan.load_id, fs):
        name = path.rsplit("/", 1)[-1]
        if name in listed:
            listed_in_place.add(name)  # moved by an earlier attempt of this commit
        else:
            log.warning("removing %s: no landed chunk lists it", path)
            fs.rm(path)
    staged = {p.rsplit("/", 1)[-1]: p for p in staged_files(dest, dataset, table, plan.load_id, fs)}
    lost = sorted(listed - listed_in_place - set(staged))
    if lost:
        lease.write_log(log_.with_pending(None))
        raise JobError(
            f"split load {plan.load_id} of {lease.name}: {len(lost)} landed file(s) are gone "
            f"({', '.join(lost[:3])}); nothing was committed (the split load is abandoned), "
            "run the job again"
        )
    started = time.monotonic()
    moved = 0
    for name, path in staged.items():
        if name in listed and name not in listed_in_place:
            move_into_load(dest, path, fs)
            moved += 1
        else:  # an attempt that lost its race or died: never part of the load
            log.info("removing %s: staged by an attempt no landing lists", path)
            fs.rm(path)
    log.info(
        "split load %s of %s: %d staged file(s) moved into the table in %.2f s",
        plan.load_id,
        lease.name,
        moved,
        time.monotonic() - started,
    )
    rows = sum(landed.rows for landed in pending.landed.values())
    highest = tuple(landed.highest for landed in pending.landed.values() if landed.highest)
    return rows, len(listed), highest
