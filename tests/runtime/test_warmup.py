"""ingest.runtime.warmup: the engine's libraries imported once, GC paused meanwhile and resumed after;
only the first call freezes anything."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_preload_engine_imports_everything_freezes_it_and_resumes_gc():
    script = textwrap.dedent(
        """
        import gc, sys
        from ingest.runtime.warmup import ENGINE_MODULES, preload_engine
        assert "dlt" not in sys.modules
        preload_engine()
        missing = [name for name in ENGINE_MODULES if name not in sys.modules]
        assert not missing, missing
        assert gc.isenabled(), "garbage collection left disabled"
        assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()
        frozen = gc.get_freeze_count()
        later = [[i] for i in range(1000)]  # objects a warm worker holds at a later call
        gc.disable()
        preload_engine()
        assert not gc.isenabled(), "a caller's disabled GC was turned on"
        assert gc.get_freeze_count() == frozen, "a later call froze more objects"
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_collection_pause_restores_what_it_found_and_may_resume_twice():
    import gc

    from ingest.runtime.warmup import CollectionPause

    was = gc.isenabled()
    try:
        gc.enable()
        pause = CollectionPause()
        pause.pause()
        assert not gc.isenabled()
        pause.pause()  # again: still one pause, still restoring "enabled"
        pause.resume()
        assert gc.isenabled()
        pause.resume()  # the owner's close() after the finally: nothing more
        assert gc.isenabled()
        # two overlapping (threads of one worker): the one that found it enabled brings it back
        first, second = CollectionPause(), CollectionPause()
        first.pause()
        second.pause()
        second.resume()
        assert not gc.isenabled()
        first.resume()
        assert gc.isenabled()
        gc.disable()  # a caller that keeps it off: left off
        third = CollectionPause()
        third.pause()
        third.resume()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
