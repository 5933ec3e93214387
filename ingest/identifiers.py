"""Validation of names that come from the configuration and end up in SQL or paths.

Identifiers are never pasted into SQL: dlt/SQLAlchemy quote them. These checks make sure
a configured name is a plain SQL name in the first place, so a typo or an injection attempt
(`orders; drop table x`) is reported at validation time, with its row and column.
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

#: A plain SQL identifier: letter or underscore first, then letters, digits, `_` or `$`.
SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")
#: A source connection name: snake_case; it becomes a folder and a Key Vault secret prefix.
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: A job id: short and path-safe (it appears in file names and Durable instance ids).
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_sql_name(value: str) -> bool:
    return bool(SQL_NAME.match(value))


def is_source_name(value: str) -> bool:
    return bool(SOURCE_NAME.match(value))


def is_job_id(value: str) -> bool:
    return bool(JOB_ID.match(value))


@lru_cache(maxsize=1024)
def lake_name(identifier: str) -> str:
    """The name dlt gives `identifier` in the lake (its snake_case naming convention).

    Folder names in the lake come from this, so two configured tables collide exactly
    when this function returns the same value for both.
    """
    naming = _dlt_naming()
    return str(naming.snake_case.NamingConvention().normalize_table_identifier(identifier))


def lake_schema_name(pipeline_name: str) -> str:
    """The dlt schema name of a job's pipeline (it prefixes `_dlt_loads` marker files)."""
    return str(_dlt_naming().schema_utils.normalize_schema_name(pipeline_name))


@lru_cache(maxsize=1)
def _dlt_naming() -> Any:
    """dlt's naming convention and schema names: the one lazy import of dlt here."""
    # dlt (about 1 s to import): only when a lake name is computed, not to check a name
    from dlt.common.normalizers.naming import snake_case
    from dlt.common.schema import utils as schema_utils

    return SimpleNamespace(snake_case=snake_case, schema_utils=schema_utils)
