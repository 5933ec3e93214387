"""Source types: one builder per `source_type`, looked up through a small registry.

The registry maps a source_type to the dotted path of its builder class, so checking a
configuration never imports database drivers; `get_builder` imports the one that is needed.
A source type that needs more configuration than the jobs sheet (REST: the `api` sheet)
contributes its validation through `CONFIG_EXTENSIONS`, which `ingest.config` applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from ingest.errors import JobError
from ingest.sources.base import (
    ExtractOptions,
    KeyRange,
    SourceBuilder,
    SourceTable,
    SourceTimeouts,
)

if TYPE_CHECKING:
    from ingest.config.model import JobConfig
    from ingest.config.sheets import RawRow
    from ingest.errors import Problem

#: source_type -> "module:Class". Add a source type here and nowhere else.
REGISTRY: dict[str, str] = {
    "postgresql": "ingest.sources.sql:PostgresBuilder",
    "mysql": "ingest.sources.sql:MySqlBuilder",
    "mssql": "ingest.sources.sql:MsSqlBuilder",
    "oracle": "ingest.sources.sql:OracleBuilder",
    "sqlite": "ingest.sources.sql:SqliteBuilder",
    "rest_api": "ingest.sources.rest:RestApiBuilder",
}


#: source_type -> "module:object" of its `ConfigExtension` (source types that need one)
CONFIG_EXTENSIONS: dict[str, str] = {
    "rest_api": "ingest.sources.rest_config:REST_API_CONFIG",
}


class ConfigExtension(Protocol):
    """What a source type adds to the configuration check (`ingest.config.validate`)."""

    #: jobs-sheet columns it reads (known columns: no "unknown column" warning)
    columns: tuple[str, ...]

    def apply(
        self,
        config_path: str,
        sheets: Mapping[str, tuple[list[str], list[RawRow]]],
        job_rows: list[RawRow],
        checked: list[JobConfig],
        problems: list[Problem],
        warnings: list[str],
    ) -> list[JobConfig]:
        """The checked jobs, completed from the extra sheets; problems and warnings appended
        (each with its sheet, row and column)."""
        ...


def _load(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(import_module(module_name), name)


@cache
def config_extensions() -> tuple[ConfigExtension, ...]:
    return tuple(_load(target) for target in CONFIG_EXTENSIONS.values())


def known_source_types() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_builder(source_type: str, timeouts: SourceTimeouts | None = None) -> SourceBuilder:
    """The builder for `source_type` (with the job's source timeouts); an unknown type names
    the known ones."""
    try:
        target = REGISTRY[source_type]
    except KeyError:
        raise JobError(
            f"unknown source_type {source_type!r}; known: {', '.join(REGISTRY)}"
        ) from None
    return _load(target)(timeouts)


__all__ = [
    "CONFIG_EXTENSIONS",
    "REGISTRY",
    "ConfigExtension",
    "ExtractOptions",
    "KeyRange",
    "SourceBuilder",
    "SourceTable",
    "SourceTimeouts",
    "config_extensions",
    "get_builder",
    "known_source_types",
]
