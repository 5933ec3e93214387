"""The run store: one run's plan and its tables' results in the lake, passed by reference.

A Durable orchestration keeps every payload in its history and replays that history after
every event, so the function app never passes the plan or the full results through it. The
`plan_run` activity writes the plan here, `ingest_table` reads its task and writes its result
here, `write_audit` reads the results back; the orchestrations exchange only references (run
id, batch number, position) and compact counts.

    <lake>/metadata/runs/<run_id>/plan.json              what the run does (counts, skipped, ...)
    <lake>/metadata/runs/<run_id>/batches/<NNNNN>.json   the tasks of one batch, in plan order
    <lake>/metadata/runs/<run_id>/results/<job_id>.json  the full result of one table
    <lake>/metadata/runs/<run_id>/splits/<job_id>.json   a split table's plan (its chunks read it)
    <lake>/metadata/runs/<run_id>/splits/<job_id>.snapshot.json  the snapshot its chunks read
    <lake>/metadata/runs/<run_id>/splits/<job_id>.ended.json     its commit ended

Writes are whole-file overwrites, so an activity that Durable runs twice (at least once)
writes the same file again: the last attempt's result is the one that counts. `plan.json` is
written after the batches, so a reader that finds it finds every batch. The local CLI keeps
its results in memory and does not use this module.

This is where tasks, results and split plans leave the process: each is written as its
type's JSON (`to_dict`) and read back as its type (`from_dict`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from ingest.app.batching import batch_count
from ingest.lake.atomic import update_text
from ingest.lake.destination import Destination
from ingest.lake.layout import RUNS_DIR
from ingest.model.plan import Plan
from ingest.model.result import JobResult
from ingest.model.split import SplitPlan
from ingest.model.task import Task

log = logging.getLogger(__name__)


class RunStoreError(RuntimeError):
    """The run store lacks something it should hold (e.g. the plan of a run was deleted)."""


class RunStore:
    def __init__(self, destination: str, run_id: str):
        self.destination = destination
        self.run_id = run_id
        self.dest = Destination.from_url(destination)
        self._fs: Any = None

    # -------------------------------------------------------------------------- files
    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = self.dest.filesystem()
        return self._fs

    def path(self, *parts: str) -> str:
        return self.dest.path(RUNS_DIR, self.run_id, *parts)

    def _write(self, path: str, data: Any) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, separators=(",", ":"), default=str))

    def _read(self, path: str) -> Any:
        with self.fs.open(path, "r", encoding="utf-8") as handle:
            return json.loads(handle.read())

    # -------------------------------------------------------------------------- plan
    def write_plan(self, plan: Plan, batch_size: int, **extra: Any) -> dict[str, Any]:
        """Store a plan (`ingest.plan.plan` output) in batches of `batch_size` tasks;
        returns the stored summary (`plan.json`): everything but the tasks, plus counts."""
        tasks = [task.to_dict() for task in plan.tasks]
        batches = batch_count(len(tasks), batch_size)
        for number in range(batches):
            chunk = tasks[number * batch_size : (number + 1) * batch_size]
            self._write(self.path("batches", f"{number:05d}.json"), chunk)
        meta = {key: value for key, value in plan.to_dict().items() if key != "tasks"}
        meta.update(
            run_id=self.run_id,
            destination=self.destination,
            total=len(tasks),
            batch_size=batch_size,
            batches=batches,
            **extra,
        )
        self._write(self.path("plan.json"), meta)
        return meta

    def plan(self) -> dict[str, Any]:
        try:
            return self._read(self.path("plan.json"))
        except FileNotFoundError:
            raise RunStoreError(
                f"run {self.run_id}: no plan in {self.path('plan.json')} (was the run's "
                "folder deleted while it ran?)"
            ) from None

    def batch(self, number: int) -> list[Task]:
        try:
            stored = self._read(self.path("batches", f"{number:05d}.json"))
        except FileNotFoundError:
            raise RunStoreError(
                f"run {self.run_id}: batch {number} is not in the run store"
            ) from None
        return [Task.from_dict(task) for task in stored]

    def task(self, number: int, position: int) -> Task:
        tasks = self.batch(number)
        if not 0 <= position < len(tasks):
            raise RunStoreError(
                f"run {self.run_id}: batch {number} has {len(tasks)} task(s), "
                f"no position {position}"
            )
        return tasks[position]

    def tasks(self) -> list[Task]:
        """Every task of the run, in plan order."""
        meta = self.plan()
        out: list[Task] = []
        for number in range(int(meta["batches"])):
            out.extend(self.batch(number))
        return out

    # -------------------------------------------------------------------------- results
    def result_path(self, job_id: str) -> str:
        return self.path("results", f"{job_id}.json")

    def write_result(self, result: JobResult) -> None:
        self._write(self.result_path(result.job_id), result.to_dict())

    def result(self, job_id: str) -> JobResult | None:
        try:
            return JobResult.from_dict(self._read(self.result_path(job_id)))
        except FileNotFoundError:
            return None

    def results(self, job_ids: Iterable[str]) -> dict[str, JobResult]:
        """The stored results of these jobs (missing ones are left out). One `cat` of many
        paths: fsspec's blob filesystem fetches them concurrently."""
        paths = {self.result_path(job_id): job_id for job_id in job_ids}
        if not paths:
            return {}
        found = self.fs.cat(list(paths), on_error="omit")
        by_name = {str(path).rsplit("/", 1)[-1]: data for path, data in found.items()}
        out: dict[str, JobResult] = {}
        for path, job_id in paths.items():
            data = by_name.get(path.rsplit("/", 1)[-1])
            if data is not None:
                out[job_id] = JobResult.from_dict(json.loads(data))
        return out

    # -------------------------------------------------------------------------- split loads
    def split_path(self, job_id: str) -> str:
        return self.path("splits", f"{job_id}.json")

    def write_split(self, job_id: str, plan: SplitPlan) -> None:
        """The split plan of a table (`ingest.job.split`), for its chunks and its commit."""
        self._write(self.split_path(job_id), plan.to_dict())

    def split(self, job_id: str) -> SplitPlan:
        try:
            stored = SplitPlan.from_dict(self._read(self.split_path(job_id)))
        except FileNotFoundError:
            raise RunStoreError(
                f"run {self.run_id}: no split plan of job {job_id} in {self.split_path(job_id)}"
            ) from None
        if stored is None:
            raise RunStoreError(f"run {self.run_id}: the split plan of job {job_id} is empty")
        return stored

    # -------------------------------------------------------------------------- snapshots
    def _snapshot_parts(self, job_id: str) -> tuple[str, ...]:
        return (RUNS_DIR, self.run_id, "splits", f"{job_id}.snapshot.json")

    def snapshot_path(self, job_id: str) -> str:
        return self.dest.path(*self._snapshot_parts(job_id))

    def write_snapshot(self, job_id: str, snapshot: str | None, **why: Any) -> None:
        """The exported snapshot the chunks of a split table read, written by its holder
        (`hold_snapshot`): `snapshot` None when there is none to read (not exported, or lost:
        the chunks then read their ranges at their own times); `why` says why."""
        self._write(self.snapshot_path(job_id), {"snapshot": snapshot, **why})

    def claim_snapshot(
        self, job_id: str, snapshot: str | None, **why: Any
    ) -> dict[str, Any] | None:
        """Record the snapshot the chunks read, unless a record is there already: the first
        holder's record stands (two attempts of `hold_snapshot` at once would otherwise each
        record their own snapshot, and the chunks would read two states). Atomic on every
        lake (`ingest.lake.atomic`). Returns the record found (this one's was not written),
        or None when this one's was written."""
        found: dict[str, Any] = {}

        def change(old: str | None) -> str | None:
            if old is not None:
                found["record"] = json.loads(old)
                return None
            found.clear()  # a retried write (another writer came first, then went): ours
            return json.dumps({"snapshot": snapshot, **why}, separators=(",", ":"), default=str)

        update_text(self.dest, self._snapshot_parts(job_id), change)
        record: dict[str, Any] | None = found.get("record")
        return record

    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        """What the holder recorded (None: nothing yet)."""
        return self._fresh(self.snapshot_path(job_id))

    def end_split(self, job_id: str) -> None:
        """The split table's commit ended (whatever its result): its holder may let go."""
        self._write(self.path("splits", f"{job_id}.ended.json"), {"ended": True})

    def split_ended(self, job_id: str) -> bool:
        return self._fresh(self.path("splits", f"{job_id}.ended.json")) is not None

    def has_split(self, job_id: str) -> bool:
        return self._fresh(self.split_path(job_id)) is not None

    def _fresh(self, path: str) -> Any:
        """The file as it is now (a poller's read: no cached listing), None when absent."""
        self.fs.invalidate_cache(path.rsplit("/", 1)[0])
        try:
            return self._read(path)
        except FileNotFoundError:
            return None

    def result_ids(self) -> list[str]:
        """Job ids with a stored result, sorted."""
        try:
            names = self.fs.ls(self.path("results"), detail=False)
        except FileNotFoundError:
            return []
        ids = [str(name).rsplit("/", 1)[-1] for name in names]
        return sorted(name[: -len(".json")] for name in ids if name.endswith(".json"))

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path("plan.json")))
