"""The validated job configuration: one frozen `JobConfig` per row of the `jobs` sheet.

Made by `ingest.config.load_config`; everything downstream (plan, tasks, the engine) works on
these. `to_dict()` / `from_dict()` give the JSON shape tasks carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.identifiers import lake_name, lake_schema_name
from ingest.vocabulary import LoadType, SchemaPolicy, TableFormat

#: suffix of a job's backfill pipeline (`<source>__<table>__backfill`)
BACKFILL_SUFFIX = "__backfill"
#: suffix of the schema of a job's compacted bases (`<source>_<table>_base`)
BASE_SUFFIX = "_base"


@dataclass(frozen=True)
class JobConfig:
    """One validated row of the `jobs` sheet."""

    job_id: str
    enabled: bool
    source_type: str
    source_name: str
    table_name: str
    load_type: LoadType
    schema_name: str | None = None
    watermark_column: str | None = None
    primary_key: tuple[str, ...] = ()
    initial_watermark: str | None = None
    schedule: str = "DAILY"
    owner: str | None = None
    notes: str | None = None
    schema_policy: SchemaPolicy = SchemaPolicy.EVOLVE
    table_format: TableFormat = TableFormat.PARQUET
    chunk_size: int | None = None
    #: seconds the job may run (None: INGEST_JOB_TIMEOUT_S)
    timeout_s: float | None = None
    #: `keys`: compare the source's keys with the lake's each run and land delete markers
    delete_detection: str | None = None
    #: run the delete detection every this many days (None: every run)
    delete_detection_every: int | None = None
    #: re-read this much below the last watermark (a duration for time watermarks, a number
    #: for numeric ones; parsed against the column's type when the job runs)
    lookback: str | None = None
    #: read the table as this many key ranges, each its own activity, one commit (None: only
    #: when its estimated rows exceed INGEST_SPLIT_ROWS; `ingest.job.split`)
    split: int | None = None
    #: the integer or date/time column the ranges are cut on (None: the primary key)
    split_column: str | None = None
    #: CDC jobs: the replication slot and publication to use (None: named from the job,
    #: `ingest.sources.cdc.names`)
    cdc_slot: str | None = None
    cdc_publication: str | None = None
    #: where the row came from, for messages: "sheet 'jobs' row 7"
    origin: str = ""
    #: rest_api jobs only: the validated `api` sheet row (JSON-safe dict, see
    #: ingest.sources.rest_config); not part of the hash (dicts are unhashable)
    rest: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def lake_table(self) -> str:
        """Folder name of this table in the lake (dlt's normalized table name)."""
        return lake_name(self.table_name)

    @property
    def pipeline_name(self) -> str:
        """One dlt pipeline per job: named from source and table, so states never mix."""
        return f"{self.source_name}__{self.lake_table}"

    @property
    def schema_name_in_lake(self) -> str:
        """dlt's schema name for this job's pipeline (prefix of its `_dlt_loads` markers)."""
        return lake_schema_name(self.pipeline_name)

    @property
    def backfill_pipeline_name(self) -> str:
        """A backfill of this job runs as its own pipeline: it never moves the job's state
        (see `ingest.checks.backfill`); it writes into the same table folder."""
        return f"{self.pipeline_name}{BACKFILL_SUFFIX}"

    @property
    def backfill_schema_name_in_lake(self) -> str:
        return lake_schema_name(self.backfill_pipeline_name)

    @property
    def base_schema_name_in_lake(self) -> str:
        """The schema of the job's compacted bases (`ingest.job.compaction`): the prefix of
        their completion markers."""
        return f"{self.schema_name_in_lake}{BASE_SUFFIX}"

    @property
    def is_incremental(self) -> bool:
        return self.load_type == LoadType.INCREMENTAL

    @property
    def is_cdc(self) -> bool:
        return self.load_type == LoadType.CDC

    @property
    def keeps_versions(self) -> bool:
        """Whether the job lands versions of rows (a keyed one has a current state and a
        history): INCREMENTAL and CDC jobs; a FULL job lands snapshots."""
        return self.load_type in (LoadType.INCREMENTAL, LoadType.CDC)

    def runs_on(self, weekday: str) -> bool:
        """Whether a scheduled run on `weekday` (MON..SUN, New York time) includes this job."""
        if self.schedule == "DAILY":
            return True
        return self.schedule == f"WEEKLY:{weekday}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["primary_key"] = list(self.primary_key)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        values = dict(data)
        values["primary_key"] = tuple(values.get("primary_key") or ())
        values["load_type"] = LoadType(values["load_type"])
        values["schema_policy"] = SchemaPolicy(values.get("schema_policy") or SchemaPolicy.EVOLVE)
        values["table_format"] = TableFormat(values.get("table_format") or TableFormat.PARQUET)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class IngestConfig:
    path: str
    jobs: tuple[JobConfig, ...]
    #: things that do not stop a run but that the user should know (ignored legacy columns)
    warnings: tuple[str, ...] = field(default=())

    def job(self, job_id: str) -> JobConfig:
        for job in self.jobs:
            if job.job_id == job_id:
                return job
        raise KeyError(job_id)

    @property
    def enabled_jobs(self) -> tuple[JobConfig, ...]:
        return tuple(job for job in self.jobs if job.enabled)
