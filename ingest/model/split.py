"""The plan of a split load (`ingest.job.split`): what its chunks read and where they land.
Light (no configuration, no engine): a job's result carries it while the chunks run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class SplitPlan:
    """A split load (`ingest.job.split`): one table read as key ranges on `column`, cut at
    `bounds` (text, ascending: chunk i reads `[bounds[i-1], bounds[i])`, the first from below
    (NULLs too), the last to above), all landing in load `load_id`; `token` proves the chunks
    belong to the split load the job's commit log holds as pending. INCREMENTAL: the chunks
    read below `watermark_below`, the commit from it. `chunk`: the chunk a task runs (None:
    the split load's commit)."""

    load_id: str
    token: str
    column: str
    bounds: tuple[str, ...]
    watermark_below: str | None = None
    chunk: int | None = None
    #: the source's exported snapshot every chunk reads (`ingest.job.split_snapshot`; None:
    #: each chunk reads its range at its own time)
    snapshot: str | None = None

    @property
    def chunks(self) -> int:
        return len(self.bounds) + 1

    def range_of(self, index: int) -> tuple[str | None, str | None]:
        lower = self.bounds[index - 1] if index > 0 else None
        upper = self.bounds[index] if index < len(self.bounds) else None
        return lower, upper

    def for_chunk(self, index: int | None) -> SplitPlan:
        return replace(self, chunk=index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "token": self.token,
            "column": self.column,
            "bounds": list(self.bounds),
            "watermark_below": self.watermark_below,
            "chunk": self.chunk,
            "snapshot": self.snapshot,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SplitPlan | None:
        if not data:
            return None
        chunk = data.get("chunk")
        below = data.get("watermark_below")
        snapshot = data.get("snapshot")
        return cls(
            str(data["load_id"]),
            str(data["token"]),
            str(data["column"]),
            tuple(str(b) for b in data.get("bounds") or ()),
            None if below is None else str(below),
            None if chunk is None else int(chunk),
            None if snapshot is None else str(snapshot),
        )
