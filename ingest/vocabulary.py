"""The closed vocabularies of the framework, each defined once.

They are `StrEnum`s: a member *is* its text (`LoadType.FULL == "FULL"`), so JSON payloads,
the audit CSV and the spreadsheet keep their plain strings, while the code names the values
it means and a typo is an AttributeError, not a silently different string. Parse user input
with `parse(Enum, text)`; it names the allowed values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class Status(StrEnum):
    """A job's outcome (audit column `status`)."""

    SUCCESS = "SUCCESS"
    #: loaded, but flagged (reconciliation mismatch with INGEST_RECONCILE=WARN)
    WARN = "WARN"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class LoadType(StrEnum):
    """How a job loads (config column `load_type`; BACKFILL only in the audit)."""

    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"
    #: change data capture: PostgreSQL logical replication (`ingest.sources.cdc`)
    CDC = "CDC"
    BACKFILL = "BACKFILL"


#: the load types a configuration row may name
CONFIG_LOAD_TYPES = (LoadType.FULL, LoadType.INCREMENTAL, LoadType.CDC)


class SchemaPolicy(StrEnum):
    """What a schema change in the source does (config column `schema_policy`)."""

    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_COLUMNS = "discard_columns"


class TableFormat(StrEnum):
    """How a table lands (config column `table_format`)."""

    PARQUET = "parquet"
    DELTA = "delta"


class Backend(StrEnum):
    """The SQL read path (setting INGEST_BACKEND)."""

    AUTO = "auto"
    PYARROW = "pyarrow"


class ReconcileMode(StrEnum):
    """What a reconciliation mismatch does to a job (setting INGEST_RECONCILE)."""

    FAILED = "FAILED"
    WARN = "WARN"


class Reconciled(StrEnum):
    """The reconciliation outcome (audit column `reconciled`)."""

    MATCH = "MATCH"
    MISMATCH = "MISMATCH"
    SKIPPED = "SKIPPED"


class DictionaryPolicy(StrEnum):
    """Parquet dictionary encoding (setting INGEST_PARQUET_DICTIONARY)."""

    AUTO = "auto"
    TRUE = "true"
    FALSE = "false"


#: New York weekdays, Monday first (`datetime.weekday()` order): `WEEKLY:<DAY>` schedules
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

E = TypeVar("E", bound=StrEnum)


def choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def parse(enum: type[E], text: str) -> E:
    """`text` as a member of `enum`; ValueError naming the allowed values otherwise."""
    try:
        return enum(text)
    except ValueError:
        raise ValueError(f"{text!r} is not one of: {choices(enum)}") from None


#: columns the framework adds to what lands or to the views (`ingest.views.definition`): a
#: source column of one of these names is renamed on the way in (`ingest.sources.reserved`)
LOAD_ID, LOAD_DATE = "_load_id", "_load_date"
DELETED, LSN = "_deleted", "_lsn"
VALID_FROM, VALID_TO = "_valid_from", "_valid_to"
RESERVED_COLUMNS = (LOAD_ID, LOAD_DATE, DELETED, VALID_FROM, VALID_TO, LSN)
#: of those, the ones stored in the lake's files (the others are computed by the views)
STORED_COLUMNS = (DELETED, LSN)
