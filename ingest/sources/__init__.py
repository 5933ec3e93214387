"""Source builders: one per `source_type`, looked up through a small registry.

The registry maps a source_type to the dotted path of its builder class, so checking a
configuration never imports database drivers; `get_builder` imports the one that is needed.
"""

from __future__ import annotations

from importlib import import_module

from ingest.errors import JobError
from ingest.sources.base import SourceBuilder

#: source_type -> "module:Class". Add a source type here and nowhere else.
REGISTRY: dict[str, str] = {
    "postgresql": "ingest.sources.sql:PostgresBuilder",
    "mysql": "ingest.sources.sql:MySqlBuilder",
    "mssql": "ingest.sources.sql:MsSqlBuilder",
    "oracle": "ingest.sources.sql:OracleBuilder",
    "sqlite": "ingest.sources.sql:SqliteBuilder",
    "rest_api": "ingest.sources.rest:RestApiBuilder",
}


def known_source_types() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_builder(source_type: str) -> SourceBuilder:
    """The builder for `source_type`; an unknown type names the known ones."""
    try:
        target = REGISTRY[source_type]
    except KeyError:
        raise JobError(
            f"unknown source_type {source_type!r}; known: {', '.join(REGISTRY)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    builder_class = getattr(import_module(module_name), class_name)
    return builder_class()


__all__ = ["REGISTRY", "SourceBuilder", "get_builder", "known_source_types"]
