"""Import the engine's heavy libraries once per process, cheaply.

dlt, SQLAlchemy, pyarrow and the drivers are ~2,000 modules. Importing them allocates hundreds of
thousands of objects, and the cyclic garbage collector would otherwise walk the growing heap
again and again while they load (~0.12 s of a ~0.55 s import here). So collection is paused
while they import, and what they created is then moved out of the collector's view for good
(`gc.freeze`): later collections, and the one at exit, no longer walk it either.

Used by the local runner before its first job in-process, by its pool's fork server (the
workers it forks inherit the imports; `ingest.runtime.forkserver_preload`) and by the Functions
`ingest_table` activity (once per warm worker).

`CollectionPause`: the same pause around a stretch that allocates millions of small objects
and keeps them acyclic (a CDC run's decoding: ~20 % of its time went to collections that found
nothing).
"""

from __future__ import annotations

import gc
import importlib
import sys

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
    "ingest.checks.job_checks",
    "ingest.sources.sql",
)


def preload_engine() -> None:
    """Import ENGINE_MODULES with garbage collection paused, then freeze what they created.
    Only the first call in a process does anything: later calls (every activity on a warm
    Functions worker) must not freeze again, or the garbage alive at that moment would never
    be collected."""
    if all(name in sys.modules for name in ENGINE_MODULES):
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in ENGINE_MODULES:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class CollectionPause:
    """Cyclic garbage collection paused from `pause()` until `resume()` (reference counting
    still frees nearly everything), then as `pause()` found it. Both may be called again
    (`resume()` from a `finally` and from the owner's `close()`: a generator abandoned before
    its end must not leave collection paused). Several at once (threads of one worker) may
    overlap: collection comes back when the first that found it enabled resumes, so it is
    never left paused."""

    def __init__(self) -> None:
        self._paused = False
        self._enable_after = False

    def pause(self) -> None:
        if not self._paused:
            self._enable_after = gc.isenabled()
            gc.disable()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._enable_after:
                gc.enable()
