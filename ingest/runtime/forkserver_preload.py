"""Imported by the local process pool's fork server, and only there (`ingest.runner`): the
engine is imported once with GC paused (`ingest.runtime.warmup`), and every worker forked from the
server starts with it."""

from ingest.runtime.warmup import preload_engine

preload_engine()
