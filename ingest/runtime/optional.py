"""Optional packages (pyproject.toml extras) and what happens without them.

- `fast` (connectorx): the exact fast read path for PostgreSQL. Without it those tables are
  read through dlt's pyarrow backend (same output, slower); `fast_path_available` says so once
  per process in the log.
- `delta` (deltalake): `table_format = delta`. Without it such a job fails before it reads a
  row, with `require_delta`'s message naming the extra; Parquet jobs are unaffected.

Checking costs no import: `importlib.util.find_spec` only looks the module up.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ingest.errors import JobError
from ingest.vocabulary import TableFormat

log = logging.getLogger(__name__)

#: extra -> (module, what it gives)
EXTRAS = {
    "fast": ("connectorx", "the fast PostgreSQL read path"),
    "delta": ("deltalake", "table_format = delta"),
}


class MissingOptionalPackage(JobError):
    """A feature a job asks for needs a package that is not installed."""


def installed(module: str) -> bool:
    """Whether `import module` would find it (a module set to None in sys.modules, as tests
    do to simulate an uninstalled package, counts as missing)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(extra: str) -> str:
    module, _ = EXTRAS[extra]
    deployed = ",".join(dict.fromkeys(("fast", extra)))
    return (
        f"pip install 'dlt-ingest[{extra}]' (or pip install {module}); for the function app, "
        f"re-lock with python3 tasks.py lock --deploy-extras {deployed} and redeploy "
        "(README, Dependencies)"
    )


def fast_path_available() -> bool:
    """connectorx is installed; logs once per process when it is not."""
    if installed(EXTRAS["fast"][0]):
        return True
    _log_fast_path_missing()
    return False


@functools.cache
def _log_fast_path_missing() -> None:
    log.warning(
        "connectorx is not installed: PostgreSQL tables are read with dlt's pyarrow backend "
        "(same data, ~3-4x slower). To use the fast path: %s",
        install_hint("fast"),
    )


def require_delta(job_id: str) -> None:
    """Raise, naming the extra, when a `table_format = delta` job cannot be written."""
    if not installed(EXTRAS["delta"][0]):
        raise MissingOptionalPackage(
            f"job {job_id} has table_format = delta, but the Python package deltalake is not "
            f"installed here; install it with {install_hint('delta')}, or set the job's "
            "table_format to parquet"
        )


def check_jobs(
    jobs: Iterable[Any], fast_path_extra: Callable[[str], str | None]
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the optional packages the enabled jobs need, for `validate`
    (`fast_path_extra`: a source type's extra of its faster reader, from its capabilities)."""
    jobs = list(jobs)
    errors: list[str] = []
    warnings: list[str] = []
    for job in jobs:
        if job.table_format == TableFormat.DELTA:
            try:
                require_delta(job.job_id)
            except MissingOptionalPackage as exc:
                errors.append(str(exc))
    fast = [j.job_id for j in jobs if fast_path_extra(j.source_type) == "fast"]
    if fast and not installed(EXTRAS["fast"][0]):
        warnings.append(
            f"connectorx is not installed: PostgreSQL job(s) {', '.join(fast)} will use "
            f"dlt's pyarrow backend (~3-4x slower); {install_hint('fast')}"
        )
    return errors, warnings
