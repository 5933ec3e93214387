"""Source types: one builder per `source_type`, looked up through a small registry.

The registry maps a source_type to the dotted path of its builder class, so checking a
configuration never imports database drivers; `get_builder` imports the one that is needed.
A source type that needs more configuration than the jobs sheet (REST: the `api` sheet)
names its validation in its `Capabilities` (with its aliases, row count, snapshot isolation,
exported snapshots, fast path): a new source type is one module and one registry line.
`source_types()` hands the names, aliases and extensions to `ingest.config`'s validation
(through `ingest.configuration`).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

from ingest.config.extension import ConfigExtension, SourceTypes
from ingest.errors import JobError
from ingest.sources.base import (
    Capabilities,
    ExtractOptions,
    KeyRange,
    SourceBuilder,
    SourceTable,
    SourceTimeouts,
)

#: source_type -> "module:Class". Add a source type here and nowhere else.
REGISTRY: dict[str, str] = {
    "postgresql": "ingest.sources.sql:PostgresBuilder",
    "mysql": "ingest.sources.sql:MySqlBuilder",
    "mssql": "ingest.sources.sql:MsSqlBuilder",
    "oracle": "ingest.sources.sql:OracleBuilder",
    "sqlite": "ingest.sources.sql:SqliteBuilder",
    "rest_api": "ingest.sources.rest:RestApiBuilder",
}


def _load(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(import_module(module_name), name)


def builder_class(source_type: str) -> type[SourceBuilder]:
    """The registered builder class of `source_type` (imports its module, not its driver)."""
    cls: type[SourceBuilder] = _load(REGISTRY[source_type])
    return cls


def capabilities(source_type: str) -> Capabilities:
    """What `source_type` can do (`SourceBuilder.capabilities`)."""
    return builder_class(source_type).capabilities


@cache
def config_extensions() -> tuple[ConfigExtension, ...]:
    return tuple(
        _load(target)
        for name in REGISTRY
        if (target := capabilities(name).config_extension) is not None
    )


@cache
def source_types() -> SourceTypes:
    """What validation needs of the registered source types (`ingest.configuration`): their
    names, the other names they accept, their sheet checks, the types that read tables."""
    aliases = {alias: name for name in REGISTRY for alias in capabilities(name).aliases}
    tables = tuple(name for name in REGISTRY if capabilities(name).reads_tables)
    changes = tuple(name for name in REGISTRY if capabilities(name).change_capture)
    return SourceTypes(known_source_types(), config_extensions(), aliases, tables, changes)


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
    "Capabilities",
    "builder_class",
    "capabilities",
    "REGISTRY",
    "ConfigExtension",
    "ExtractOptions",
    "KeyRange",
    "SourceBuilder",
    "SourceTable",
    "SourceTimeouts",
    "config_extensions",
    "source_types",
    "get_builder",
    "known_source_types",
]
