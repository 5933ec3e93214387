"""A task: what `plan` hands to `run_job` for one job. Small, JSON-safe, no secrets.

A task is identified by its run id and its kind: `plain`, `full_refresh`, or
`backfill:<from>..<to>`. The same task run twice lands its data once (`ingest.lake.ledger`).
`to_dict()` is the JSON shape that plans, Durable payloads and the CLI carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.config.model import JobConfig
from ingest.model.split import SplitPlan

PLAIN, FULL_REFRESH, BACKFILL = "plain", "full_refresh", "backfill"


@dataclass(frozen=True)
class Backfill:
    """Re-extract the watermark range `[start, end)` (`end` None: no upper bound)."""

    start: str
    end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Backfill | None:
        if not data:
            return None
        return cls(str(data["from"]), None if data.get("to") in (None, "") else str(data["to"]))


@dataclass(frozen=True)
class Task:
    run_id: str
    job: JobConfig
    destination: str
    full_refresh: bool = False
    config_path: str | None = None
    backfill: Backfill | None = None
    #: a split load's chunk or commit (None: a whole job, which may decide to split)
    split: SplitPlan | None = None

    @property
    def kind(self) -> str:
        if self.backfill:
            return f"{BACKFILL}:{self.backfill.start}..{self.backfill.end or ''}"
        return FULL_REFRESH if self.full_refresh else PLAIN

    @property
    def key(self) -> str:
        """What makes two tasks the same task: run id and kind."""
        return task_key(self.run_id, self.kind)

    @property
    def pipeline_name(self) -> str:
        """The dlt pipeline that loads it: the job's, or the job's backfill pipeline."""
        return self.job.backfill_pipeline_name if self.backfill else self.job.pipeline_name

    @property
    def schema_name(self) -> str:
        """dlt's schema name of that pipeline (prefix of its `_dlt_loads` markers)."""
        if self.backfill:
            return self.job.backfill_schema_name_in_lake
        return self.job.schema_name_in_lake

    @property
    def continues_from_state(self) -> bool:
        """Whether the load continues from the job's stored cursor: not a full refresh (from
        initial_watermark) and not a backfill (its own range, never the job's watermark)."""
        return not (self.full_refresh or self.backfill)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job.to_dict(),
            "destination": self.destination,
            "full_refresh": self.full_refresh,
            "config_path": self.config_path,
            "backfill": self.backfill.to_dict() if self.backfill else None,
            "split": self.split.to_dict() if self.split else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        return cls(
            run_id=str(data["run_id"]),
            job=JobConfig.from_dict(data["job"]),
            destination=str(data["destination"]),
            full_refresh=bool(data.get("full_refresh", False)),
            config_path=data.get("config_path"),
            backfill=Backfill.from_dict(data.get("backfill")),
            split=SplitPlan.from_dict(data.get("split")),
        )


def task_key(run_id: str, kind: str) -> str:
    return f"{run_id}|{kind}"
