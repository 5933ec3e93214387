"""A run: what `write_audit` takes (step 3's input): the run's job results, where and when it
ran, what started it, and how long a scheduled run waited for another run first.

`to_dict()` is the JSON shape telemetry projects (`ingest.telemetry`); inside the process the
steps hand each other the `Run` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.model.result import JobResult


@dataclass(frozen=True)
class Waited:
    """How long a scheduled run waited for other runs before it started, and how it ended
    ("finished", "gave up waiting", or why it could not check)."""

    waited_s: int = 0
    waited_for: tuple[str, ...] = ()
    outcome: str = ""

    @property
    def note(self) -> str:
        """The audit's `run_note` of each of the run's results."""
        minutes = round(self.waited_s / 60)
        others = ", ".join(self.waited_for) or "another run"
        return f"scheduled run started {minutes} min late: waited for {others} ({self.outcome})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "waited_s": self.waited_s,
            "waited_for": list(self.waited_for),
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Waited | None:
        if not data:
            return None
        return cls(
            int(data.get("waited_s") or 0),
            tuple(str(r) for r in data.get("waited_for") or ()),
            str(data.get("outcome") or ""),
        )


@dataclass(frozen=True)
class Run:
    run_id: str
    destination: str
    results: tuple[JobResult, ...] = ()
    #: ISO time the run started: picks the audit file's date (None: today, UTC)
    started_at: str | None = None
    #: what started it: cli, http, timer (None: cli)
    trigger: str | None = None
    #: a scheduled run's wait for other runs (None: it did not wait)
    waited: Waited | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "destination": self.destination,
            "started_at": self.started_at,
            "trigger": self.trigger,
            "results": [result.to_dict() for result in self.results],
            "waited_s": self.waited.waited_s if self.waited else None,
            "waited_for": list(self.waited.waited_for) if self.waited else [],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        waited = None
        if data.get("waited_s") is not None or data.get("waited_for"):
            waited = Waited(int(data.get("waited_s") or 0), tuple(data.get("waited_for") or ()), "")
        return cls(
            run_id=str(data["run_id"]),
            destination=str(data["destination"]),
            results=tuple(JobResult.from_dict(r) for r in data.get("results") or ()),
            started_at=data.get("started_at"),
            trigger=data.get("trigger"),
            waited=waited,
        )
