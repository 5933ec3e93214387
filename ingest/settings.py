"""Every setting the framework reads from the environment (app settings on Azure).

This module is the single catalogue and the only module that touches the process
environment (a test fails on any other): code reads settings through `Settings.from_env`
(all of them, typed and checked) or `read(name)` (one catalogued value, where a whole
`Settings` is not at hand), and the environment itself only through `environment()`
(dlt-convention secret variables, handing the environment to worker processes). The README
table and the infrastructure templates are checked against `CATALOGUE`. Importing it is
cheap (no third-party imports).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from ingest.vocabulary import Backend, DictionaryPolicy, E, ReconcileMode, parse


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: str | None
    description: str
    #: "app": set by the deployment for the function app; "local": laptop/dev only;
    #: "optional": read when present, no deployment value needed.
    scope: str = "app"


CATALOGUE: tuple[SettingSpec, ...] = (
    SettingSpec(
        "INGEST_CONFIG_PATH",
        "config/ingestion_config.xlsx",
        "Job configuration workbook (.xlsx) or .csv, relative to the app root.",
    ),
    SettingSpec(
        "INGEST_DESTINATION",
        "file://./lake",
        "Lake root: file:// path, az://<container>[/path] or "
        "abfss://<container>@<account>.dfs.core.windows.net[/path].",
    ),
    SettingSpec(
        "INGEST_MAX_PARALLEL",
        "8",
        "Tables in flight at once (Durable fan-out window; default for --workers is 1).",
    ),
    SettingSpec(
        "INGEST_BATCH_SIZE",
        "25",
        "Tables per Durable sub-orchestration (keeps every orchestration history short).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_SCHEDULE_MAX_WAIT_MIN",
        "240",
        "Minutes the nightly run waits for another active run to end before it runs anyway.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_RETRY_MAX_ATTEMPTS", "3", "Attempts per table activity, first one included."
    ),
    SettingSpec(
        "INGEST_RETRY_FIRST_INTERVAL_S",
        "30",
        "Seconds before the first retry of a failed table activity.",
    ),
    SettingSpec(
        "INGEST_RETRY_BACKOFF", "2.0", "Multiplier applied to the retry interval after each try."
    ),
    SettingSpec(
        "INGEST_CHUNK_SIZE", "100000", "Rows per extracted batch (bounds memory per table)."
    ),
    SettingSpec(
        "INGEST_FILE_MAX_ROWS",
        "1000000",
        "Rows per Parquet file before a load rolls over to the next file.",
    ),
    SettingSpec(
        "INGEST_BACKEND",
        "auto",
        "auto: exact fast path (ConnectorX + cast) where the source allows it; "
        "pyarrow: always dlt's pyarrow backend.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_READ_PARTITIONS",
        "auto",
        "Parallel reads of one table on the fast path, split on an integer primary key: "
        "auto (2 for a whole-table read of a table PostgreSQL estimates at 500,000 rows or "
        "more, on 2 or more cores; else 1) or a number.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_SPLIT_ROWS",
        "50000000",
        "A whole-table read (FULL, first INCREMENTAL load, full refresh, backfill) of a SQL "
        "table whose catalogue estimate exceeds this many rows is split into key ranges of "
        "about this many rows, each its own activity, committed as one load (0: only jobs "
        "with `split`).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_SPLIT_MAX_CHUNKS",
        "64",
        "The most key ranges one table is split into by its estimate (INGEST_SPLIT_ROWS).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_SPLIT_STALE_S",
        "7200",
        "Seconds a split load may go without a chunk starting or landing before another writer "
        "of the job may abandon it (its chunks then never commit; the next run removes them).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_SPLIT_SNAPSHOT",
        "on",
        "on: the chunks of a split FULL load read one exported snapshot of a source that "
        "exports one (PostgreSQL), held open by the local runner or a `hold_snapshot` activity "
        "until every chunk landed; off: each chunk reads its range at its own time (a held "
        "snapshot keeps the source's VACUUM from removing row versions it still sees).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_LOAD_WORKERS",
        "2",
        "Files of one job written to the lake at once (dlt's load step). On blob storage each "
        "holds up to a whole file in memory (~60 MB per million rows): 2 keeps a 5M-row job "
        "under 400 MB.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_PARQUET_DICTIONARY",
        "auto",
        "Parquet dictionary encoding: auto (columns with at most 10% distinct values in a "
        "file's first 10,000 rows), true (every column, pyarrow's default) or false (none).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_RECONCILE",
        "FAILED",
        "What a row-count reconciliation mismatch does to a job: FAILED, or WARN (loaded, "
        "flagged, run exit code 0).",
    ),
    SettingSpec(
        "INGEST_LEASE_PERIOD_S",
        "60",
        "Seconds a job's blob lease lasts without renewal (15..60; renewed every third of it): "
        "how long a crashed writer can block its job.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_LEASE_WAIT_S",
        "90",
        "Seconds a second writer of a job waits for the lease before it gives up (SKIPPED "
        "locally, a retried failure on Azure); longer than the lease period, so a crashed "
        "holder is always outwaited.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_LEASE_SAME_TASK_WAIT_S",
        "7200",
        "Seconds a writer waits when the holder runs the very same task (same run id and "
        "kind, e.g. a retried activity whose first attempt still runs): it then reports "
        "that load. Keep it at most the Functions timeout (host.json functionTimeout).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_JOB_TIMEOUT_S",
        "6600",
        "Seconds one job may run (reading, writing, committing) before it ends FAILED and "
        "retriable; a job's `timeout` column overrides it. Keep it below the Functions timeout "
        "(host.json functionTimeout, 2 h).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_STATEMENT_TIMEOUT_S",
        "0",
        "Seconds one source statement may run (0: the job's timeout); the database cancels it "
        "and the job ends FAILED and retriable.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_LOCK_TIMEOUT_S",
        "60",
        "Seconds a source statement waits for a lock another session holds (a table locked by "
        "a migration) before the job ends FAILED and retriable, naming the wait (0: no limit).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_STATE_MEMORY_MB",
        "512",
        "Memory DuckDB may use when the engine reads a keyed table's current state (delete "
        "detection, whole-table reconciliation, compaction); beyond it, it spills to the "
        "working folder.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_CDC_MAX_CHANGES",
        "1000000",
        "CDC jobs: changes one run reads at most (whole transactions: a transaction is never "
        "split); the rest is read by the next run. A run also stops at the WAL position of its "
        "start.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_CDC_MAX_BYTES",
        "1073741824",
        "CDC jobs: bytes of change messages one run reads at most (1 GiB; whole transactions: "
        "the bound is checked before each one, so a transaction is never split and one larger "
        "than the bound is still read whole); the rest is read by the next run.",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_COMPACT_LOADS",
        "1",
        "Loads its current view reads beyond one (its last base, or before any base the "
        "first load) after which a keyed table is compacted (its current state written as a "
        "new base) at the end of a run. 1: after every run that landed something, so the "
        "view reads one base; raise it for a table too big to rewrite every run (its view "
        "then ranks the loads since the base).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_COMPACT_MAX_ROWS",
        "2000000",
        "A keyed table of more rows than this (its last base, or before any base its first "
        "load) is compacted after INGEST_COMPACT_LOADS x ceil(rows / this) loads "
        "instead, so a run pays on average at most this many rows of rewriting (a 10M-row "
        "table: every 5th load); 0: no limit (INGEST_COMPACT_LOADS whatever the size).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_COMPACT_RATIO",
        "0.5",
        "Rows loaded since its last base, as a share of the base, after which a keyed table "
        "is compacted (0: only INGEST_COMPACT_LOADS).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_HISTORY_RETENTION_DAYS",
        "0",
        "Days of versions a compacted keyed table keeps for its history view (0: every "
        "version, forever).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_WORK_DIR",
        None,
        "Scratch dir for dlt working folders (default: the system temp dir; "
        "never /home/site/wwwroot on Azure).",
        scope="optional",
    ),
    SettingSpec(
        "INGEST_LOG_FORMAT",
        "text",
        "Log format of the dlt-ingest command on stderr: text (local time with UTC offset, "
        "run and job id) or json (one object per line, for log shippers); --log-format "
        "overrides it. The function app logs through the Functions host.",
        scope="local",
    ),
    SettingSpec(
        "INGEST_SECRETS_FILE",
        ".dlt/secrets.toml",
        "Local secrets file read after environment variables.",
        scope="local",
    ),
    SettingSpec(
        "AZURE_KEY_VAULT_URL",
        None,
        "Key Vault URL; when set, connection secrets are read from it.",
    ),
    SettingSpec(
        "AZURE_STORAGE_ACCOUNT_NAME",
        None,
        "Lake storage account for az:// destinations (identity-based access).",
    ),
    SettingSpec(
        "AZURE_CLIENT_ID",
        None,
        "Client id of the user-assigned managed identity used for Key Vault and storage.",
    ),
    SettingSpec(
        "AZURE_STORAGE_CONNECTION_STRING",
        None,
        "Dev/Azurite only: connection string with an account key for the lake.",
        scope="local",
    ),
    SettingSpec(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        None,
        "Application Insights connection string; telemetry is off when unset.",
    ),
    SettingSpec(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        None,
        "Entra ID auth for telemetry: Authorization=AAD;ClientId=<identity client id> "
        "(the exporter reads it itself; no instrumentation key auth).",
    ),
    SettingSpec(
        "OTEL_SERVICE_NAME",
        None,
        "Service name of the telemetry (cloud_RoleName); default: WEBSITE_SITE_NAME, "
        "else dlt-ingest.",
        scope="optional",
    ),
    SettingSpec(
        "WEBSITE_SITE_NAME",
        None,
        "Set by Azure Functions to the app's name (the telemetry's default service name).",
        scope="optional",
    ),
    SettingSpec(
        "RUNTIME__DLTHUB_TELEMETRY",
        "false",
        "dlt's anonymous usage telemetry; off unless set to true.",
        scope="optional",
    ),
)

_BY_NAME = {spec.name: spec for spec in CATALOGUE}


def default_of(name: str) -> str | None:
    return _BY_NAME[name].default


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def environment() -> Mapping[str, str]:
    """The process environment, for what is not a setting of ours: secret variables of
    dlt's convention (`SOURCES__<NAME>__<KEY>`) and the environment a worker process gets."""
    return os.environ


def replace_environment(values: Mapping[str, str]) -> None:
    """Make the process environment exactly `values` (a pool worker takes its caller's)."""
    if os.environ != values:
        os.environ.clear()
        os.environ.update(values)


def set_default(name: str, value: str) -> None:
    """Give a library's environment switch a value unless the user chose one."""
    os.environ.setdefault(name, value)


def verbose_dlt_logging() -> None:
    """`--verbose`: dlt logs at INFO at least (its own RUNTIME__LOG_LEVEL, which dlt applies to
    its logger when it starts, may say WARNING: our default, or an inherited value)."""
    if (os.environ.get("RUNTIME__LOG_LEVEL") or "").upper() not in ("DEBUG", "INFO"):
        os.environ["RUNTIME__LOG_LEVEL"] = "INFO"


def _read(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """One catalogued setting's value (its default when unset or empty)."""
    spec = _BY_NAME[name]  # KeyError: not in the catalogue
    env = os.environ if env is None else env
    return (env.get(name) or "").strip() or spec.default


# --- settings read before (or without) a whole Settings: one accessor each -----------------


def storage_account_name(env: Mapping[str, str] | None = None) -> str | None:
    """AZURE_STORAGE_ACCOUNT_NAME: the account of an `az://container/path` lake URL."""
    return _read("AZURE_STORAGE_ACCOUNT_NAME", env)


def storage_connection_string(env: Mapping[str, str] | None = None) -> str | None:
    """AZURE_STORAGE_CONNECTION_STRING: a development credential (Azurite)."""
    return _read("AZURE_STORAGE_CONNECTION_STRING", env)


def managed_identity_client_id(env: Mapping[str, str] | None = None) -> str | None:
    """AZURE_CLIENT_ID: the user-assigned managed identity, when the app uses one."""
    return _read("AZURE_CLIENT_ID", env)


def telemetry_connection_string(env: Mapping[str, str] | None = None) -> str:
    """APPLICATIONINSIGHTS_CONNECTION_STRING ("" when unset: no telemetry)."""
    return _read("APPLICATIONINSIGHTS_CONNECTION_STRING", env) or ""


def telemetry_service_name(default: str, env: Mapping[str, str] | None = None) -> str:
    """OTEL_SERVICE_NAME, else WEBSITE_SITE_NAME (the function app's name), else `default`."""
    return _read("OTEL_SERVICE_NAME", env) or _read("WEBSITE_SITE_NAME", env) or default


def work_dir(env: Mapping[str, str] | None = None) -> Path:
    """INGEST_WORK_DIR (default: <temp>/ingest)."""
    return Path(_read("INGEST_WORK_DIR", env) or os.path.join(tempfile.gettempdir(), "ingest"))


#: the values of INGEST_LOG_FORMAT (and --log-format)
LOG_FORMATS = ("text", "json")


def log_format(env: Mapping[str, str] | None = None) -> str:
    """INGEST_LOG_FORMAT, checked."""
    value = str(_read("INGEST_LOG_FORMAT", env)).lower()
    if value not in LOG_FORMATS:
        raise SettingsError(
            f"setting INGEST_LOG_FORMAT={value!r} must be one of {', '.join(LOG_FORMATS)}"
        )
    return value


def _partitions(env: Mapping[str, str], name: str) -> int | None:
    """A number of reads, or None for `auto`."""
    raw = str(env.get(name) or default_of(name)).strip()
    if raw.lower() == "auto":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"setting {name}={raw!r} must be auto or a whole number from 1")
    return int(raw)


def _int(env: Mapping[str, str], name: str, minimum: int = 1, maximum: int | None = None) -> int:
    raw = env.get(name) or default_of(name)
    try:
        value = int(str(raw))
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"setting {name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"setting {name}={value} must be at most {maximum}")
    return value


def _switch(env: Mapping[str, str], name: str) -> bool:
    """on / off."""
    raw = str(env.get(name) or default_of(name)).strip().lower()
    if raw not in ("on", "off"):
        raise SettingsError(f"setting {name}={raw!r} must be on or off")
    return raw == "on"


def _float(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or default_of(name)
    try:
        return float(str(raw))
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not a number") from None


def _enum(env: Mapping[str, str], name: str, enum: type[E], upper: bool = False) -> E:
    raw = (env.get(name) or str(default_of(name))).strip()
    try:
        return parse(enum, raw.upper() if upper else raw.lower())
    except ValueError as exc:
        raise SettingsError(f"setting {name}: {exc}") from None


@dataclass(frozen=True)
class Settings:
    config_path: str
    destination: str
    max_parallel: int
    retry_max_attempts: int
    retry_first_interval_s: int
    retry_backoff: float
    chunk_size: int
    file_max_rows: int
    work_dir: Path
    secrets_file: Path
    key_vault_url: str | None
    backend: Backend = Backend.AUTO
    #: None: auto (ingest.sources.fast_arrow.auto_partitions)
    read_partitions: int | None = None
    load_workers: int = 2
    parquet_dictionary: DictionaryPolicy = DictionaryPolicy.AUTO
    reconcile_mode: ReconcileMode = ReconcileMode.FAILED
    storage_account_name: str | None = None
    lease_period_s: int = 60
    lease_wait_s: int = 90
    lease_same_task_wait_s: int = 7200
    compact_loads: int = 1
    compact_ratio: float = 0.5
    compact_max_rows: int = 2_000_000
    history_retention_days: int = 0
    batch_size: int = 25
    schedule_max_wait_min: int = 240
    job_timeout_s: int = 6600
    #: 0: the job's timeout
    statement_timeout_s: int = 0
    #: 0: no limit
    lock_timeout_s: int = 60
    state_memory_mb: int = 512
    #: split a whole-table read above this estimate (0: only jobs with `split`)
    split_rows: int = 50_000_000
    split_max_chunks: int = 64
    split_stale_s: int = 7200
    #: the chunks of a split FULL load read one exported snapshot (where the source exports one)
    split_snapshot: bool = True
    cdc_max_changes: int = 1_000_000
    cdc_max_bytes: int = 1 << 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            config_path=env.get("INGEST_CONFIG_PATH") or str(default_of("INGEST_CONFIG_PATH")),
            destination=env.get("INGEST_DESTINATION") or str(default_of("INGEST_DESTINATION")),
            max_parallel=_int(env, "INGEST_MAX_PARALLEL"),
            retry_max_attempts=_int(env, "INGEST_RETRY_MAX_ATTEMPTS"),
            retry_first_interval_s=_int(env, "INGEST_RETRY_FIRST_INTERVAL_S"),
            retry_backoff=_float(env, "INGEST_RETRY_BACKOFF"),
            chunk_size=_int(env, "INGEST_CHUNK_SIZE", minimum=100),
            file_max_rows=_int(env, "INGEST_FILE_MAX_ROWS", minimum=1000),
            work_dir=work_dir(env),
            secrets_file=Path(
                env.get("INGEST_SECRETS_FILE") or str(default_of("INGEST_SECRETS_FILE"))
            ),
            key_vault_url=env.get("AZURE_KEY_VAULT_URL") or None,
            backend=_enum(env, "INGEST_BACKEND", Backend),
            read_partitions=_partitions(env, "INGEST_READ_PARTITIONS"),
            load_workers=_int(env, "INGEST_LOAD_WORKERS"),
            parquet_dictionary=_enum(env, "INGEST_PARQUET_DICTIONARY", DictionaryPolicy),
            reconcile_mode=_enum(env, "INGEST_RECONCILE", ReconcileMode, upper=True),
            storage_account_name=storage_account_name(env),
            lease_period_s=_int(env, "INGEST_LEASE_PERIOD_S", minimum=15, maximum=60),
            lease_wait_s=_int(env, "INGEST_LEASE_WAIT_S", minimum=0),
            lease_same_task_wait_s=_int(env, "INGEST_LEASE_SAME_TASK_WAIT_S", minimum=0),
            batch_size=_int(env, "INGEST_BATCH_SIZE"),
            history_retention_days=_int(env, "INGEST_HISTORY_RETENTION_DAYS", minimum=0),
            compact_ratio=_float(env, "INGEST_COMPACT_RATIO"),
            compact_loads=_int(env, "INGEST_COMPACT_LOADS"),
            compact_max_rows=_int(env, "INGEST_COMPACT_MAX_ROWS", minimum=0),
            schedule_max_wait_min=_int(env, "INGEST_SCHEDULE_MAX_WAIT_MIN", minimum=0),
            job_timeout_s=_int(env, "INGEST_JOB_TIMEOUT_S"),
            statement_timeout_s=_int(env, "INGEST_STATEMENT_TIMEOUT_S", minimum=0),
            lock_timeout_s=_int(env, "INGEST_LOCK_TIMEOUT_S", minimum=0),
            state_memory_mb=_int(env, "INGEST_STATE_MEMORY_MB", minimum=64),
            split_rows=_int(env, "INGEST_SPLIT_ROWS", minimum=0),
            split_max_chunks=_int(env, "INGEST_SPLIT_MAX_CHUNKS", minimum=2, maximum=256),
            split_stale_s=_int(env, "INGEST_SPLIT_STALE_S", minimum=60),
            split_snapshot=_switch(env, "INGEST_SPLIT_SNAPSHOT"),
            cdc_max_changes=_int(env, "INGEST_CDC_MAX_CHANGES"),
            cdc_max_bytes=_int(env, "INGEST_CDC_MAX_BYTES"),
        )


#: pipeline state files dlt keeps per job in the lake (apply_dlt_defaults): the newest, and the
#: last completed one while a new load is not yet marked complete (ingest.lake.loads)
MAX_STATE_FILES = 2


def apply_dlt_defaults(
    settings: Settings | None = None, env: MutableMapping[str, str] | None = None
) -> None:
    """Set dlt's process-wide defaults unless the user already chose a value.

    dlt reads its configuration from environment variables; these are the framework's defaults:
    no anonymous usage telemetry (production networks block egress), no second copy of every
    loaded file in the working folder (small serverless disks), two pipeline state files per
    job in the lake instead of 100 (dlt lists them all per job), Parquet files rolled over
    every INGEST_FILE_MAX_ROWS rows (bounded file size). (The Parquet dictionary policy is a
    writer class, installed by the engine: `ingest.lake.parquet_writer`.)
    """
    env = os.environ if env is None else env
    env.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    env.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
    env.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    # dlt lists every state file of a source's jobs to find one job's newest, before and
    # after each load: keep two per job (the newest, and the last completed one while a new
    # load is not yet marked complete), not dlt's 100 (bench/warm.py --many-same-lake)
    env.setdefault("DESTINATION__FILESYSTEM__MAX_STATE_FILES", str(MAX_STATE_FILES))
    # zstd: smaller files than snappy and, measured here, cheaper to write (bench/README)
    env.setdefault("DATA_WRITER__COMPRESSION", "zstd")
    if settings is not None:
        env.setdefault("DATA_WRITER__FILE_MAX_ITEMS", str(settings.file_max_rows))
