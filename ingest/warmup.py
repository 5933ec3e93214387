"""Import the engine's heavy libraries once per process, cheaply.

dlt, SQLAlchemy, pyarrow and the drivers are ~2,000 modules. Importing them allocates hundreds of
thousands of objects, and the cyclic garbage collector would otherwise walk the growing heap
again and again while they load (~0.12 s of a ~0.55 s import here). So collection is paused
while they import, and what they created is then moved out of the collector's view for good
(`gc.freeze`): later collections, and the one at exit, no longer walk it either.

Used by the CLI before the first job, by the local process pool's fork server (its workers
inherit the imports) and by the Functions activities (once per warm worker).
"""

from __future__ import annotations

import gc
import importlib

#: everything a job imports sooner or later (dlt imports `requests` and `pyarrow.compute`
#: lazily on the first pipeline / first Arrow batch; importing them here is no extra cost)
ENGINE_MODULES = (
    "dlt",
    "dlt.sources.sql_database",
    "dlt.sources.helpers.requests",
    "dlt.destinations.impl.filesystem.filesystem",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.parquet",
    "sqlalchemy",
    "ingest.job",
    "ingest.trust",
    "ingest.sources.sql",
)


def preload_engine() -> None:
    """Import ENGINE_MODULES with garbage collection paused, then freeze what they created.
    Idempotent: modules already imported cost a dictionary lookup."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in ENGINE_MODULES:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
