"""Test hook for real `python -m ingest run` processes (tests/job/test_exactly_once.py,
tests/lake/test_commit_fence.py). On PYTHONPATH only in tests.

- INGEST_TEST_PAUSE_DIR: the process stops at a point of its load, creates `<dir>/<point>`
  (holding what it was doing) and waits until the test creates `<dir>/go` (or kills or stops
  it). That forces the overlap the tests need without timing guesses. The point is
  INGEST_TEST_PAUSE_AT:
  - `first_file` (default): right after its first Parquet data file reached the lake;
  - `commit`: right after its commit was written to the table's commit log, before dlt writes
    the load's state file and completion marker;
  - `committed`: right after the completion marker (the load is visible; the job has not
    returned its result, nor the run written its audit row);
  - `compaction_files`: a compaction wrote its base's files, right before it commits them;
  - `compaction_marker`: a compaction committed its base, right before the base's marker;
  - `chunk_write`: a chunk of a split load passed its checks and is about to write its files;
  - `chunk_written`: a chunk wrote its files and is about to record its landing.
  Several points, comma-separated, pause once each; `<dir>/go_<point>` releases one of them.
- INGEST_TEST_CLOCK_SKEW_S: the process's wall clock (`time.time`) is off by that many seconds
  (negative: behind), as on a host whose clock drifted.
"""

import os
import pathlib
import threading
import time

_SKEW = float(os.environ.get("INGEST_TEST_CLOCK_SKEW_S") or 0)
if _SKEW:
    _real_time = time.time

    def _skewed_time() -> float:
        return _real_time() + _SKEW

    time.time = _skewed_time  # before dlt binds it (dlt.common.time)

_PAUSE_DIR = os.environ.get("INGEST_TEST_PAUSE_DIR")
_POINTS = set((os.environ.get("INGEST_TEST_PAUSE_AT") or "first_file").split(","))
_PAUSE_AT = next(iter(_POINTS)) if len(_POINTS) == 1 else ""
_paused: set[str] = set()
_lock = threading.Lock()


def _pause(point: str, note: str) -> None:
    with _lock:
        if point in _paused:
            return
        _paused.add(point)
    folder = pathlib.Path(_PAUSE_DIR)
    (folder / f"{point}.pid").write_text(str(os.getpid()))  # which process to kill
    (folder / point).write_text(note)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (folder / "go").exists() or (folder / f"go_{point}").exists():
            break
        time.sleep(0.02)


if _PAUSE_DIR and _PAUSE_AT == "first_file":
    from dlt.destinations.impl.filesystem.filesystem import FilesystemLoadJob

    _original_run = FilesystemLoadJob.run

    def _run_then_pause(self):
        _original_run(self)
        if self._file_name.endswith(".parquet"):
            _pause("first_file", self.make_remote_path())

    FilesystemLoadJob.run = _run_then_pause

if _PAUSE_DIR and _PAUSE_AT == "commit":
    from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

    _original_store_state = FilesystemClient._store_current_state

    def _pause_then_store_state(self, load_id):
        _pause("commit", load_id)
        return _original_store_state(self, load_id)

    FilesystemClient._store_current_state = _pause_then_store_state

if _PAUSE_DIR and _PAUSE_AT == "committed":
    from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

    _original_store_load = FilesystemClient._store_load

    def _store_load_then_pause(self, load_id):
        _original_store_load(self, load_id)
        _pause("committed", load_id)

    FilesystemClient._store_load = _store_load_then_pause

if _PAUSE_DIR and _PAUSE_AT == "compaction_files":
    import ingest.job.compaction as compaction

    _original_add = compaction.CommitLog.add

    def _pause_then_add(self, load_id, schema, run_id="", task=""):
        if task == compaction.COMPACT_TASK:
            _pause("compaction_files", load_id)
        return _original_add(self, load_id, schema, run_id, task)

    compaction.CommitLog.add = _pause_then_add

if _PAUSE_DIR and _PAUSE_AT == "compaction_marker":
    import ingest.job.compaction as compaction

    _original_marker = compaction._write_marker

    def _pause_then_mark(dest, fs, job, load_id):
        _pause("compaction_marker", load_id)
        return _original_marker(dest, fs, job, load_id)

    compaction._write_marker = _pause_then_mark

if _PAUSE_DIR and {"chunk_write", "chunk_written"} & _POINTS:
    import ingest.job.chunk as chunk

    _original_chunk_commit = chunk._commit

    def _pause_around_chunk_write(pipeline, table, workers):
        if "chunk_write" in _POINTS:
            _pause("chunk_write", table)
        written = _original_chunk_commit(pipeline, table, workers)
        if "chunk_written" in _POINTS:
            _pause("chunk_written", table)
        return written

    chunk._commit = _pause_around_chunk_write
