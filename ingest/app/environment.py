"""The function app's environment: its settings, with paths that work on Azure.

On Azure the app folder (`/home/site/wwwroot`) is read-only with run-from-package and the
worker's working directory is not always the app's folder: the config path is looked up
in the app folder too, and the scratch folder is the temp dir.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from ingest.settings import Settings

log = logging.getLogger(__name__)

#: the app root (where function_app.py and config/ live); read-only on Azure
APP_ROOT = Path(__file__).resolve().parents[2]
READ_ONLY_ROOTS = ("/home/site/wwwroot",)


def resolve_config_path(path: str) -> str:
    """A relative config path is looked up in the working directory, then in the app root
    (the Functions worker's working directory is not always the app's folder)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    in_app = APP_ROOT / candidate
    return str(in_app) if in_app.exists() else str(candidate)


def settings() -> Settings:
    """Settings from the app settings, with a writable work dir (never the app folder)."""
    current = Settings.from_env()
    work_dir = current.work_dir
    if any(str(work_dir.resolve()).startswith(root) for root in READ_ONLY_ROOTS):
        fallback = Path(tempfile.gettempdir()) / "ingest"
        log.warning("INGEST_WORK_DIR %s is read-only on Azure; using %s", work_dir, fallback)
        work_dir = fallback
    work_dir.mkdir(parents=True, exist_ok=True)
    if work_dir != current.work_dir:
        current = replace(current, work_dir=work_dir)
    return current
