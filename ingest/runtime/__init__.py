"""The process around the engine: logging, the engine's warm-up, optional packages.

Modules: `logsetup` (console logging of the CLI), `logcontext` (run id and job id on every log
record), `warmup` (import the engine once per process, garbage collection paused),
`forkserver_preload` (what the local pool's fork server imports), `optional` (the `fast` and
`delta` extras and what happens without them).
"""

from ingest.runtime.logcontext import ContextFilter, job_context
from ingest.runtime.logsetup import configure_logging
from ingest.runtime.warmup import preload_engine

__all__ = ["ContextFilter", "configure_logging", "job_context", "preload_engine"]
