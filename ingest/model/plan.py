"""A plan: what `ingest.plan` hands to the run for one run (step 1's output).

Its tasks, the jobs it left out and why, the configuration's warnings and, for a backfill
run, the range. `to_dict()` is the JSON shape the CLI's `plan --json` prints and the run
store keeps (`ingest.app.runstore`); `from_dict` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.model.task import Task


@dataclass(frozen=True)
class Skipped:
    """A job the plan left out, and why (disabled, another day's schedule)."""

    job_id: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"job_id": self.job_id, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Skipped:
        return cls(str(data["job_id"]), str(data["reason"]))


@dataclass(frozen=True)
class BackfillRange:
    """What a backfill run re-extracts: job `job`, watermarks `[start, end)` (`end` None: no
    upper bound)."""

    job: str
    start: str
    end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "from": self.start, "to": self.end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BackfillRange | None:
        if not data:
            return None
        end = data.get("to")
        return cls(str(data["job"]), str(data["from"]), None if end in (None, "") else str(end))


@dataclass(frozen=True)
class Plan:
    run_id: str
    destination: str
    config_path: str | None
    tasks: tuple[Task, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()
    full_refresh: bool = False
    #: a backfill run's range (None: a normal run)
    backfill: BackfillRange | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "destination": self.destination,
            "config_path": self.config_path,
            "full_refresh": self.full_refresh,
        }
        if self.backfill is not None:
            data["backfill"] = self.backfill.to_dict()
        data.update(
            tasks=[task.to_dict() for task in self.tasks],
            skipped=[skipped.to_dict() for skipped in self.skipped],
            warnings=list(self.warnings),
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            run_id=str(data["run_id"]),
            destination=str(data["destination"]),
            config_path=data.get("config_path"),
            tasks=tuple(Task.from_dict(task) for task in data.get("tasks") or ()),
            skipped=tuple(Skipped.from_dict(s) for s in data.get("skipped") or ()),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
            full_refresh=bool(data.get("full_refresh", False)),
            backfill=BackfillRange.from_dict(data.get("backfill")),
        )
