"""The job configuration (`config/ingestion_config.xlsx`, or a .csv with the same columns),
read once and validated up front into frozen `JobConfig`s.

    config = load_config("config/ingestion_config.xlsx")   # ConfigError lists every problem
    (`ingest.configuration.load_config`: this package is handed the source types)
    for job in config.enabled_jobs: ...

Modules: `sheets` (reading a workbook or CSV into raw rows), `validate` (rows -> jobs, every
problem with its sheet, row and column), `model` (`JobConfig`, `IngestConfig`).
"""

from ingest.config import validate
from ingest.config.extension import ConfigExtension, SourceTypes
from ingest.config.model import IngestConfig, JobConfig
from ingest.config.sheets import DEFAULT_SHEET, RawRow, read_sheets
from ingest.config.validate import (
    LEGACY_IGNORED,
    LEGACY_RENAMES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    parse_rows,
)

__all__ = [
    "ConfigExtension",
    "SourceTypes",
    "validate",
    "DEFAULT_SHEET",
    "LEGACY_IGNORED",
    "LEGACY_RENAMES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "IngestConfig",
    "JobConfig",
    "RawRow",
    "parse_rows",
    "read_sheets",
]
