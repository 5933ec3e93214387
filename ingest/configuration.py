"""The job configuration, validated with the registered source types.

`ingest.config` validates a configuration file against the source types it is handed (it never
imports `ingest.sources`); this module hands it the registry's. Everything that reads the
configuration calls `load_config` from here.
"""

from __future__ import annotations

from pathlib import Path

from ingest.config import IngestConfig, validate
from ingest.sources import source_types


def load_config(path: str | Path) -> IngestConfig:
    """Read and validate a job configuration file (.xlsx or .csv); ConfigError lists every
    problem with its sheet, row and column."""
    return validate.load_config(path, source_types())
