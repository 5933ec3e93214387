"""Test hook for real `python -m ingest run` processes (tests/test_exactly_once.py).

On PYTHONPATH only in tests. When INGEST_TEST_PAUSE_DIR is set, the process stops right after
its first Parquet data file reached the lake: it creates `<dir>/first_file` and waits until
the test creates `<dir>/go` (or kills it). That forces the overlap the tests need (a second
writer starts while the first is mid-load) without timing guesses.
"""

import os
import pathlib
import threading
import time

_PAUSE_DIR = os.environ.get("INGEST_TEST_PAUSE_DIR")

if _PAUSE_DIR:
    from dlt.destinations.impl.filesystem.filesystem import FilesystemLoadJob

    _original_run = FilesystemLoadJob.run
    _paused = threading.Event()

    def _run_then_pause(self):
        _original_run(self)
        if self._file_name.endswith(".parquet") and not _paused.is_set():
            _paused.set()
            folder = pathlib.Path(_PAUSE_DIR)
            (folder / "first_file").write_text(self.make_remote_path())
            deadline = time.monotonic() + 300
            while not (folder / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    FilesystemLoadJob.run = _run_then_pause
