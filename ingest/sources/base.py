"""The contract every source type implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ingest.secrets import Secret
from ingest.sources import credentials
from ingest.vocabulary import Backend

if TYPE_CHECKING:
    from ingest.config.model import JobConfig
    from ingest.errors import JobError
    from ingest.secrets import SecretResolver


@dataclass(frozen=True)
class KeyRange:
    """What one chunk of a split load reads (`ingest.job.split`): rows whose `column` lies in
    `[lower, upper)` (None: unbounded on that side; values as text, typed by the column), and
    rows where it is NULL when `with_nulls`; INCREMENTAL: only rows whose watermark is below
    `watermark_below`. `nothing`: no row at all (the commit of a split FULL load)."""

    column: str
    lower: str | None = None
    upper: str | None = None
    with_nulls: bool = False
    watermark_below: str | None = None
    nothing: bool = False


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract, decided by the runner (settings, CLI flags)."""

    chunk_size: int = 100_000
    #: when set, the incremental cursor starts here instead of the stored state
    initial_watermark: Any = None
    #: backfill: stop at this watermark (exclusive); None = no upper bound
    end_watermark: Any = None
    #: auto: the fast exact path where the source supports it; pyarrow: dlt's backend
    backend: Backend = Backend.AUTO
    #: parallel reads of one table on the fast path (split on an integer primary key);
    #: None: decided per table (ingest.sources.fast_arrow.auto_partitions)
    partitions: int | None = None
    #: data trust (ingest.checks.reconcile): SQLAlchemy engine to read through (one shared snapshot)
    engine: Any = None
    #: INCREMENTAL: the stored cursor value (typed), and the rows at it that landed; when set,
    #: the read starts above the last value if the source still holds exactly that many rows
    #: at it (ingest.checks.boundary), else at it
    last_value: Any = None
    open_unless_boundary_changed: int | None = None
    #: a split load's chunk: only these rows (None: the whole read)
    key_range: KeyRange | None = None
    #: a split load's chunk: the exported snapshot (PostgreSQL) every one of its reads imports
    snapshot: str | None = None


@dataclass(frozen=True)
class SourceTable:
    """What a builder hands the engine for one job."""

    #: the dlt resource yielding the table's rows (Arrow batches for SQL sources)
    resource: Any
    #: SQL sources: the watermark column's reflected SQLAlchemy type (reconciliation binds
    #: the counted window with it); None without a watermark column or for other sources
    watermark_type: Any = None
    #: the key in force: the configured primary_key, else the table's own (empty: none)
    primary_key: tuple[str, ...] = ()
    #: INCREMENTAL: whether the read includes the last watermark (`>=`) or starts above it
    range_closed: bool = True
    #: INCREMENTAL: the job's lookback as dlt's `lag` (None: no lookback)
    lag: float | None = None
    #: source columns that land under another name (`ingest.sources.reserved`)
    renamed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceTimeouts:
    """How long the source may make a job wait (None: no limit of ours).

    `statement_s`: one statement (a query that never returns, a huge sort); `lock_s`: waiting
    for a lock another session holds (a table locked by a migration or a long transaction).
    Either ends the statement with the database's own error, which the job reports as a
    retriable failure naming the setting."""

    statement_s: float | None = None
    lock_s: float | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a source type can do, declared by its builder (every field, no defaults: a builder
    that forgets one does not import; tests/sources/test_capabilities.py checks the registry).
    The engine asks these, never the type's name."""

    #: other names a configuration may give the type (`postgres` for postgresql)
    aliases: tuple[str, ...]
    #: the source counts a table's rows (reconciliation); else why not, for the audit
    row_count: bool
    no_count_reason: str
    #: a FULL load and its counts read one snapshot (one transaction of the source)
    snapshot_isolation: bool
    #: other sessions can import a transaction's snapshot (PostgreSQL `pg_export_snapshot()`,
    #: `SET TRANSACTION SNAPSHOT`): a split FULL load's chunks read one state of the table
    #: (`ingest.job.split_snapshot`)
    exports_snapshot: bool
    #: the pyproject extra of a faster reader it uses when installed (None: no such reader)
    fast_path_extra: str | None
    #: "module:object" of its `ingest.config.ConfigExtension` (None: the jobs sheet is enough)
    config_extension: str | None
    #: it reads tables that may have a primary key (an INCREMENTAL job without one is warned)
    reads_tables: bool
    #: a CDC job can read its change stream (PostgreSQL: logical replication, pgoutput)
    change_capture: bool


class SourceBuilder(ABC):
    """Builds the dlt resource that extracts one configured table."""

    source_type: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: connection keys that must be found for this source type
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: connection keys used when present
    optional_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, timeouts: SourceTimeouts | None = None) -> None:
        self.timeouts = timeouts or SourceTimeouts()

    @abstractmethod
    def build_resource(
        self, job: JobConfig, secrets: dict[str, Secret], options: ExtractOptions
    ) -> SourceTable:
        """The dlt resource of the configured table (and what the engine needs to know of
        it)."""

    @abstractmethod
    def check_connection(self, job: JobConfig, secrets: dict[str, Secret]) -> None:
        """Connect and check the table is there; raise JobError saying what is wrong."""

    def describe(self, secrets: dict[str, Secret]) -> str:
        """Where the source is, for messages: no secret values."""
        return self.source_type

    def secrets(self, resolver: SecretResolver, source_name: str) -> dict[str, Secret]:
        """This source's connection values, in every form dlt documents: separate keys, the
        credentials table, and (for database sources) a connection string
        (`ingest.sources.credentials`)."""
        parse = None
        if self.source_type in credentials.SPECS:

            def parse(value: Any) -> dict[str, str]:
                return credentials.parse_connection(self.source_type, value)

        return resolver.resolve(
            source_name,
            self.required_keys,
            self.optional_keys,
            parse=parse,
            example=credentials.example(self.source_type),
        )

    def explain(self, exc: BaseException, job: JobConfig, where: str) -> JobError | None:
        """This source type's message for a failure of its job (None: the generic one of
        `ingest.job.errors`)."""
        return None
