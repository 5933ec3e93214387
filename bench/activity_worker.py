"""A warm Functions worker's activities, without the host: one process that runs the app's own
activities (`ingest.app.activities`: `plan_run`, then `ingest_table`) one request at a time,
as the Functions host calls them on a worker that has already run one (imports done once, the
engine warmed up by the activity itself).

Reads one JSON request per line on stdin: {"run_id", "job", "destination", "config"}; answers
one JSON line on stdout per request: {"seconds": the `ingest_table` activity's wall time,
"cpu": this process's CPU seconds meanwhile (every thread), "peak_mb": its peak resident memory
meanwhile (VmHWM, reset before the activity), "status", "duration_s", "rows"}. Used by
bench/cdc.py (`--activity`); asserts nothing.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _reset_peak() -> None:
    """Linux: VmHWM restarts from the current resident size ("5" to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    from ingest.app import activities

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        os.environ["INGEST_CONFIG_PATH"] = request["config"]
        os.environ["INGEST_DESTINATION"] = request["destination"]
        planned = activities.plan_run({"run_id": request["run_id"], "jobs": [request["job"]]})
        reference = {
            "run_id": planned["run_id"],
            "destination": planned["destination"],
            "batch": 0,
            "position": 0,
        }
        _reset_peak()
        cpu, started = _cpu(), time.perf_counter()
        result = activities.ingest_table(reference)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        answer = {
            "seconds": seconds,
            "cpu": cpu,
            "peak_mb": _peak_mb(),
            "status": result.get("status"),
            "duration_s": result.get("duration_s"),
            "rows": result.get("rows_loaded"),
        }
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
