"""Logging for the command line (the function app uses the Functions host's logging)."""

from __future__ import annotations

import logging
import sys

from ingest.runtime.logcontext import ContextFilter
from ingest.secrets.redaction import RedactionFilter

FORMAT = "%(asctime)s %(levelname)-7s [%(run_id)s %(job_id)s] %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """One stderr handler with run id and job id on every line; quiet third parties."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ingest", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ingest = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())  # resolved secret values never reach stderr
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("dlt", "azure", "urllib3", "sqlalchemy", "fsspec", "adlfs"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
