"""The contract every source type implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ingest.secrets.resolver import Secret

if TYPE_CHECKING:
    from ingest.config import JobConfig


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract, decided by the runner (settings, CLI flags)."""

    chunk_size: int = 100_000
    #: when set, the incremental cursor starts here instead of the stored state
    initial_watermark: Any = None
    #: backfill: stop at this watermark (exclusive); None = no upper bound
    end_watermark: Any = None
    #: path of the job configuration file (REST jobs read their `api` sheet from it)
    config_path: str | None = None
    #: "auto": the fast exact path where the source supports it; "pyarrow": dlt's backend
    backend: str = "auto"
    #: parallel reads of one table on the fast path (split on an integer primary key)
    partitions: int = 1
    #: data trust (ingest.checks.reconcile): SQLAlchemy engine to read through (one shared snapshot)
    engine: Any = None


class SourceBuilder(ABC):
    """Builds the dlt resource that extracts one configured table."""

    source_type: ClassVar[str]
    #: connection keys that must be found for this source type
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: connection keys used when present
    optional_keys: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def build_resource(
        self, job: JobConfig, secrets: dict[str, Secret], options: ExtractOptions
    ) -> Any:
        """A dlt resource yielding the table's rows (Arrow batches for SQL sources)."""

    @abstractmethod
    def check_connection(self, job: JobConfig, secrets: dict[str, Secret]) -> None:
        """Connect and check the table is there; raise JobError saying what is wrong."""

    def describe(self, secrets: dict[str, Secret]) -> str:
        """Where the source is, for messages: no secret values."""
        return self.source_type
