"""A lake table's commit log: which of its loads are committed, in which order.

dlt writes a load's data files, then its pipeline state, then its completion marker
(`_dlt_loads/<schema>__<load_id>.jsonl`). A marker alone cannot say whether its writer still
held the job's lease when it wrote it: a writer that stalled for longer than the lease period
(a frozen VM, a stopped process) can wake up after another writer took the job over and write
its marker anyway. So a load is **committed** only when the table's commit log lists it, and the
log is written only by the lease's holder, with a write the storage itself refuses to anyone
else (`ingest.lake.lease`: on blob storage a write of the lease blob carrying the lease id and
the ETag the holder last saw; on a local lake under the job's exclusive `flock`). A reader
counts a load when it has a completion marker and the log commits it.

The log also orders the loads without any host's clock: each commit takes the next sequence
number, and a new load's id (dlt's `load_id`, a unix time as text, which names its files and
orders its pipeline states) is made greater than every committed load id of the table
(`next_load_id`), so a writer whose clock is behind still writes the newest load and state.

The log is small and bounded: the last `KEEP` commits, and a `floor` (loads with a marker and an
id up to it are committed: loads made before the log existed, and commits trimmed from it).
A lake table without a log (written by an earlier version) is read as before: every marked load.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

#: the log's format version
FORMAT = 1
#: commits the log keeps (older ones are folded into its floor)
KEEP = 100
#: how much greater than the last committed load id a new load id is at least
LOAD_ID_STEP = 0.001


@dataclass(frozen=True)
class Commit:
    """One committed load of the table."""

    load_id: str
    seq: int
    #: the dlt schema whose load it is (the job's pipeline, or its backfill pipeline)
    schema: str
    run_id: str = ""
    task: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "seq": self.seq,
            "schema": self.schema,
            "run_id": self.run_id,
            "task": self.task,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Commit:
        return cls(
            str(data["load_id"]),
            int(data["seq"]),
            str(data.get("schema") or ""),
            str(data.get("run_id") or ""),
            str(data.get("task") or ""),
        )


@dataclass(frozen=True)
class ChunkLanded:
    """One chunk of a split load that landed: its data files (names in the load's date
    folder) and rows."""

    files: tuple[str, ...]
    rows: int
    #: a backfill's chunk: the highest watermark it read ("" if none)
    highest: str = ""
    #: the exported snapshot of the source it read ("" if none: it read its range as of then)
    snapshot: str = ""
    #: the source's rows in its range counted in that snapshot (None: not counted)
    counted: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"files": list(self.files), "rows": self.rows}
        data["highest"] = self.highest
        if self.snapshot:
            data["snapshot"] = self.snapshot
        if self.counted is not None:
            data["counted"] = self.counted
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkLanded:
        return cls(
            tuple(str(f) for f in data.get("files") or ()),
            int(data.get("rows") or 0),
            str(data.get("highest") or ""),
            str(data.get("snapshot") or ""),
            None if data.get("counted") is None else int(data["counted"]),
        )


@dataclass(frozen=True)
class Pending:
    """A split load between its start and its commit (see module doc)."""

    load_id: str
    run_id: str
    task: str
    #: carried by the chunks: a chunk of another (abandoned) split load never lands
    token: str
    chunks: int
    #: when a chunk last started or landed (UTC, ISO): only to let another writer abandon a
    #: split load nobody works on (INGEST_SPLIT_STALE_S); never orders or fences anything
    touched: str
    landed: dict[int, ChunkLanded] = field(default_factory=dict)
    #: the split plan (JSON), so that a retried start returns the same one
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(i in self.landed for i in range(self.chunks))

    def owned_by(self, run_id: str, task: str) -> bool:
        return (self.run_id, self.task) == (run_id, task)

    def to_json(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "run_id": self.run_id,
            "task": self.task,
            "token": self.token,
            "chunks": self.chunks,
            "touched": self.touched,
            "landed": {str(i): c.to_json() for i, c in sorted(self.landed.items())},
            "plan": self.plan,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        return cls(
            str(data["load_id"]),
            str(data.get("run_id") or ""),
            str(data.get("task") or ""),
            str(data["token"]),
            int(data["chunks"]),
            str(data.get("touched") or ""),
            {int(i): ChunkLanded.from_json(c) for i, c in (data.get("landed") or {}).items()},
            dict(data.get("plan") or {}),
        )


def _greater(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if float(a) >= float(b) else b


@dataclass(frozen=True)
class CommitLog:
    """The table's commit log (see module doc)."""

    seq: int = 0
    floor: str | None = None
    commits: tuple[Commit, ...] = field(default=())
    #: the split load in progress (None: none)
    pending: Pending | None = None

    def with_pending(self, pending: Pending | None) -> CommitLog:
        return replace(self, pending=pending)

    def is_committed(self, load_id: str) -> bool:
        if any(c.load_id == load_id for c in self.commits):
            return True
        return self.floor is not None and float(load_id) <= float(self.floor)

    @property
    def last_load_id(self) -> str | None:
        """The greatest committed load id (None: nothing committed yet)."""
        last = self.floor
        for commit in self.commits:
            last = _greater(last, commit.load_id)
        return last

    def add(self, load_id: str, schema: str, run_id: str = "", task: str = "") -> CommitLog:
        """The log with one more commit (the oldest ones folded into the floor); the commit of
        the pending split load ends it."""
        commits = (*self.commits, Commit(load_id, self.seq + 1, schema, run_id, task))
        floor = self.floor
        if len(commits) > KEEP:
            for dropped in commits[:-KEEP]:
                floor = _greater(floor, dropped.load_id)
            commits = commits[-KEEP:]
        pending = self.pending
        if pending is not None and pending.load_id == load_id:
            pending = None
        return CommitLog(self.seq + 1, floor, commits, pending)

    def without(self, load_ids: Iterable[str]) -> CommitLog:
        """The log without these commits (their loads never got a completion marker)."""
        gone = set(load_ids)
        return replace(self, commits=tuple(c for c in self.commits if c.load_id not in gone))

    def find(self, load_id: str) -> Commit | None:
        return next((c for c in self.commits if c.load_id == load_id), None)

    def to_text(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "seq": self.seq,
            "floor": self.floor,
            "commits": [c.to_json() for c in self.commits],
        }
        if self.pending is not None:
            data["pending"] = self.pending.to_json()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | bytes | None) -> CommitLog | None:
        """The log in `text`; None for no log (an empty lease blob, a lake without logs)."""
        if not text:
            return None
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"unknown commit log format {str(data)[:60]!r}")
        floor = data.get("floor")
        return cls(
            int(data.get("seq") or 0),
            None if floor in (None, "") else str(floor),
            tuple(Commit.from_json(c) for c in data.get("commits") or ()),
            Pending.from_json(data["pending"]) if data.get("pending") else None,
        )


def committed(markers: Iterable[str], log: CommitLog | None) -> set[str]:
    """The marked load ids that are committed (all of them for a table without a log)."""
    if log is None:
        return set(markers)
    return {load_id for load_id in markers if log.is_committed(load_id)}


def next_load_id(now: str, last: str | None) -> str:
    """A new load's id: dlt's (`now`, the clock) unless the table's last committed load id is not
    below it; then just above that one (see module doc)."""
    if last is None or float(now) > float(last):
        return now
    return repr(round(float(last) + LOAD_ID_STEP, 6))


# ------------------------------------------------------------------------------------------
# dlt: load ids above the table's last commit; the commit itself inside dlt's complete_load

#: the greatest committed load id of the table the current job loads (None: none, or no job)
_LOAD_ID_FLOOR: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ingest_load_id_floor", default=None
)
#: what commits a load inside dlt's `complete_load` (set while a job's load step runs)
_COMMITTER: contextvars.ContextVar[Callable[[str, str], None] | None] = contextvars.ContextVar(
    "ingest_committer", default=None
)


@contextlib.contextmanager
def load_ids_after(last: str | None) -> Iterator[None]:
    """Inside: dlt's new load ids are greater than `last` (see `use_sequenced_load_ids`)."""
    token = _LOAD_ID_FLOOR.set(last)
    try:
        yield
    finally:
        _LOAD_ID_FLOOR.reset(token)


#: the exact id of the load being written (a split load's chunks and commit share one)
_LOAD_ID_EXACT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ingest_load_id_exact", default=None
)


@contextlib.contextmanager
def load_id_exactly(load_id: str) -> Iterator[None]:
    """Inside: dlt's new load id is `load_id` (a split load's, chosen above every committed
    one when it started; see `use_sequenced_load_ids`)."""
    token = _LOAD_ID_EXACT.set(load_id)
    try:
        yield
    finally:
        _LOAD_ID_EXACT.reset(token)


@contextlib.contextmanager
def committing_with(committer: Callable[[str, str], None]) -> Iterator[None]:
    """Inside: dlt's `complete_load` calls `committer(load_id, schema_name)` before it writes
    the load's state and completion marker (`ingest.lake.dlt_destination`); the committer
    raises when this writer may no longer commit, and then nothing of the commit is written."""
    token = _COMMITTER.set(committer)
    try:
        yield
    finally:
        _COMMITTER.reset(token)


def commit_hook() -> Callable[[str, str], None] | None:
    """The committer of the load step running in this context (None outside a job)."""
    return _COMMITTER.get()


def use_sequenced_load_ids() -> None:
    """Make dlt's new load ids respect `load_ids_after` in this process. Idempotent."""
    # dlt: the engine's import (callers run jobs)
    from dlt.extract import storage

    # dlt's extract storage calls the name it imported: replaced there (not re-exported)
    original = storage.create_load_id
    if getattr(original, "_ingest_sequenced", False):
        return

    def create_load_id() -> str:
        exact = _LOAD_ID_EXACT.get()
        if exact is not None:
            return exact
        return next_load_id(original(), _LOAD_ID_FLOOR.get())

    create_load_id._ingest_sequenced = True  # type: ignore[attr-defined]
    storage.create_load_id = create_load_id
