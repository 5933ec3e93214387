"""What source types add to the configuration check, handed to validation from above.

`ingest.config` is a leaf: it never imports `ingest.sources`. The source registry builds a
`SourceTypes` (its type names and each type's `ConfigExtension`) and `ingest.configuration`
passes it to `ingest.config.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ingest.config.model import JobConfig
from ingest.config.sheets import RawRow
from ingest.errors import Problem


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


@dataclass(frozen=True)
class SourceTypes:
    """The source types a configuration may name, and what each adds to its check."""

    names: tuple[str, ...]
    extensions: tuple[ConfigExtension, ...] = ()
    #: other names a configuration may use -> the type's name
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: the types that read tables (an INCREMENTAL job without a primary key is warned)
    reading_tables: tuple[str, ...] = ()
    #: the types a CDC job may read (their change stream)
    capturing_changes: tuple[str, ...] = ()
