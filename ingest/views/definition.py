"""The dialect-neutral definition of one view: what every dialect's text is rendered from.

A view is a list of parts, one per completed load (or per set of files of one load that share
one column set), each naming its files relative to the lake root and the columns those files
hold. The view's columns are the stored dlt schema's; a part without a column gives NULL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.vocabulary import DELETED as DELETED
from ingest.vocabulary import LOAD_DATE as LOAD_DATE
from ingest.vocabulary import LOAD_ID as LOAD_ID
from ingest.vocabulary import VALID_FROM as VALID_FROM
from ingest.vocabulary import VALID_TO as VALID_TO

# the columns every view adds, derived from the file path (`<YYYY>/<MM>/<DD>/<load_id>.*`);
# `_deleted`, a stored column: true on a delete marker (a key the source no longer holds); the
# history of a keyed table adds when each version was valid (type 2): ingest.vocabulary
#: view kinds: every load (a table without a key); a FULL table's latest snapshot and its
#: snapshots; a keyed table's current state (one row per key) and every version of it
UNION, CURRENT, HISTORY, STATE, VERSIONS = "union", "current", "history", "state", "versions"


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    precision: int | None = None
    scale: int | None = None
    #: timestamps: aware (UTC) or naive
    timezone: bool = True
    nullable: bool = True
    #: part of the table's key (dlt's `primary_key` hint in the stored schema)
    primary_key: bool = False

    @classmethod
    def from_dlt(cls, name: str, column: Mapping[str, Any]) -> Column:
        def number(key: str) -> int | None:
            value = column.get(key)
            return int(value) if isinstance(value, int | float) else None

        return cls(
            name=name,
            data_type=str(column.get("data_type") or ""),
            precision=number("precision"),
            scale=number("scale"),
            timezone=column.get("timezone") is not False,
            nullable=column.get("nullable", True) is not False,
            primary_key=column.get("primary_key") is True,
        )


def columns_of(table: Mapping[str, Any] | None) -> tuple[Column, ...]:
    """The typed columns of a stored dlt table schema, in schema order. Columns dlt has not
    typed yet (seen only as NULL) have no data in the files and are left out."""
    if not table:
        return ()
    return tuple(
        Column.from_dlt(name, column)
        for name, column in (table.get("columns") or {}).items()
        if column.get("data_type")
    )


def load_date(load_id: str) -> str:
    """The UTC date of a load id (a unix timestamp): the date folder dlt writes its files to."""
    return dt.datetime.fromtimestamp(float(load_id), dt.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Part:
    """Files of one completed load that hold the same columns."""

    #: None for Delta data files, whose path carries no load id
    load_id: str | None
    #: files relative to the lake root, sorted
    files: tuple[str, ...]
    #: lake column names the files hold
    columns: frozenset[str]
    #: the part holds every file of its load (a glob on `<load_id>.*` names exactly these)
    whole_load: bool = True

    @property
    def load_date(self) -> str | None:
        return load_date(self.load_id) if self.load_id else None

    @property
    def folder(self) -> str:
        return self.files[0].rsplit("/", 1)[0]

    @property
    def single_folder(self) -> bool:
        return all(f.rsplit("/", 1)[0] == self.folder for f in self.files)


@dataclass(frozen=True)
class ViewDef:
    """One view: `<dataset>.<name>` over `parts` (empty: a view with no rows)."""

    dataset: str
    name: str
    table: str
    job_id: str
    load_type: str
    kind: str
    columns: tuple[Column, ...]
    parts: tuple[Part, ...]
    #: completed loads the view covers (including loads that wrote no file of this table)
    loads: tuple[str, ...] = ()
    #: Delta tables: the table folder (relative to the lake root), read by Delta readers
    delta_folder: str | None = None
    #: file names start with their load id (`<load_id>.<file_id>.parquet`); Delta's do not
    named_by_load: bool = True
    notes: tuple[str, ...] = field(default=())
    #: STATE / VERSIONS: the key columns, and the watermark column that orders the versions
    #: of a key (None: only the load order)
    keys: tuple[str, ...] = ()
    order_by: str | None = None
    #: STATE: the compacted base the view starts from (None: every load)
    base_load: str | None = None

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """The columns a reader sees (a current state shows no delete flag: it has none)."""
        if self.kind == STATE:
            return tuple(c for c in self.columns if c.name != DELETED)
        return self.columns

    @property
    def has_deleted(self) -> bool:
        return any(c.name == DELETED for c in self.columns)

    @property
    def load_in_path(self) -> bool:
        """Whether `_load_id` / `_load_date` can be derived from every file's path."""
        return self.named_by_load and not self.delta_folder

    def groups(self) -> list[tuple[frozenset[str], tuple[Part, ...]]]:
        """Parts grouped by column set, in order of first appearance: one read per group."""
        grouped: dict[frozenset[str], list[Part]] = {}
        for part in self.parts:
            grouped.setdefault(part.columns, []).append(part)
        return [(columns, tuple(parts)) for columns, parts in grouped.items()]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for part in self.parts for f in part.files)


def latest(load_ids: Iterable[str]) -> str | None:
    """The greatest load id (load ids are unix timestamps; compare them as numbers)."""
    ids = list(load_ids)
    return max(ids, key=float) if ids else None
