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
        """The log with one more commit (the oldest ones folded into the floor)."""
        commits = (*self.commits, Commit(load_id, self.seq + 1, schema, run_id, task))
        floor = self.floor
        if len(commits) > KEEP:
            for dropped in commits[:-KEEP]:
                floor = _greater(floor, dropped.load_id)
            commits = commits[-KEEP:]
        return CommitLog(self.seq + 1, floor, commits)

    def without(self, load_ids: Iterable[str]) -> CommitLog:
        """The log without these commits (their loads never got a completion marker)."""
        gone = set(load_ids)
        return replace(self, commits=tuple(c for c in self.commits if c.load_id not in gone))

    def find(self, load_id: str) -> Commit | None:
        return next((c for c in self.commits if c.load_id == load_id), None)

    def to_text(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "seq": self.seq,
                "floor": self.floor,
                "commits": [c.to_json() for c in self.commits],
            },
            separators=(",", ":"),
        )

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
        return next_load_id(original(), _LOAD_ID_FLOOR.get())

    create_load_id._ingest_sequenced = True  # type: ignore[attr-defined]
    storage.create_load_id = create_load_id
