"""Replay benchmark of the function app's orchestration: `.venv/bin/python bench/replay.py`.

Durable replays an orchestration from its whole history after every event. This drives whole
simulated runs through the Durable SDK's REAL replay engine (the handles of
`function_app.ingest_run` / `ingest_batch`, fed history JSON by `tests/durable_harness.py`'s
`DurableSim`, which plays the extension: one completion per episode, sub-orchestrations with
their own histories) and measures, per run size:

- replay CPU: CPU seconds spent inside the SDK's replay handle, summed over every episode of
  every orchestration of the run (the harness's own bookkeeping is not counted);
- events replayed: history events handed to the SDK over all those episodes: the same work
  counted without timing noise (most of a replay is the SDK parsing each event);
- plan_run output: bytes of the `plan_run` activity's result;
- largest payload: the biggest activity/sub-orchestration input or output, custom status or
  orchestration input/output;
- largest history: events and JSON bytes of the longest orchestration history.

"after" is this checkout: the real `plan_run`, `ingest_table`, `record_failure` and
`write_audit` activities run against a file:// lake in a temp folder (run store and audit
included); only `run_job` (the dlt load itself) is replaced by a function returning a
realistic result. "before" is the orchestrator of `--baseline` (a git revision: the single
orchestration of every table that this change replaced) with simulated activities returning
what that revision's activities returned (the real planner's plan, full results).

Numbers only: nothing here asserts a speed (tests never do). The targets of issue 16 are
printed next to the numbers.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: the last commit of main before issue 16 (one orchestration holding every table)
BASELINE_REV = "3e15db5"
COLUMNS = (
    "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
    "watermark_column,primary_key,initial_watermark,schedule"
).split(",")
TARGET_RATIO = 12.0
TARGET_PAYLOAD = 16 * 1024
TARGET_HISTORY = 512 * 1024
TARGET_CPU_1000 = 30.0


def write_config(path: Path, tables: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(1, tables + 1):
            incremental = i % 2 == 0
            writer.writerow(
                {
                    "job_id": f"{i:04d}",
                    "enabled": "Y",
                    "source_type": "postgresql",
                    "source_name": f"erp_{i % 10:02d}",
                    "schema_name": "sales",
                    "table_name": f"order_lines_{i:04d}",
                    "load_type": "INCREMENTAL" if incremental else "FULL",
                    "watermark_column": "updated_at" if incremental else "",
                    "primary_key": "order_id,line_no",
                    "initial_watermark": "2024-01-01T00:00:00+00:00" if incremental else "",
                    "schedule": "DAILY",
                }
            )
    return path


def full_result(task: dict[str, Any]) -> dict[str, Any]:
    """What `run_job` returns for a table that loaded (the audit row + `retriable`)."""
    from ingest.model.result import JobResult

    job = task["job"]
    return JobResult(
        run_id=task["run_id"],
        job_id=job["job_id"],
        source_type=job["source_type"],
        source_name=job["source_name"],
        table_name=job["table_name"],
        load_type=job["load_type"],
        status="SUCCESS",
        rows_loaded=123456,
        files_written=1,
        watermark_column=job.get("watermark_column") or "",
        watermark_before="2026-03-07T06:00:00+00:00",
        watermark_after="2026-03-08T06:00:00+00:00",
        load_id="1741417200.123456",
        started_at="2026-03-08T07:00:01+00:00",
        finished_at="2026-03-08T07:00:13+00:00",
        duration_s=12.345,
        source_rows=123456,
        reconciled="MATCH",
    ).to_dict()


# ------------------------------------------------------------------------------ scenarios


def split_plan(chunks: int) -> dict[str, Any]:
    """A split load's plan (`ingest.job.split`) of `chunks` ranges, as `run_job` returns it."""
    return {
        "load_id": "1741417200.123456",
        "token": "0123456789abcdef0123456789abcdef",
        "column": "order_id",
        "bounds": [str(125_000_000 * i) for i in range(1, chunks)],
        "watermark_below": "2026-03-08T06:00:00+00:00",
        "chunk": None,
    }


def run_after(
    tables: int, workdir: Path, order: str, split_tables: int = 0, split_chunks: int = 16
) -> Any:
    """This checkout's orchestration, real activities, `run_job` replaced. `split_tables`:
    that many tables (spread over the run) split into `split_chunks` chunks each: their
    `ingest_table` returns a plan, `ingest_chunk` (real, `run_chunk` replaced) runs each
    chunk, then the commit."""
    import function_app
    import ingest.job
    import ingest.job.chunk
    from ingest.app.runstore import RunStore
    from ingest.model.result import ChunkResult, JobResult
    from ingest.model.task import Task
    from ingest.vocabulary import Status
    from tests.durable_harness import ActivityFailure, DurableSim

    os.environ["INGEST_CONFIG_PATH"] = str(write_config(workdir / "jobs.csv", tables))
    os.environ["INGEST_DESTINATION"] = (workdir / "lake").as_uri()
    every = max(1, tables // split_tables) if split_tables else 0
    split_ids = {f"{i:04d}" for i in range(every, tables + 1, every)} if every else set()
    split_ids = set(sorted(split_ids)[:split_tables])

    def run_job(task: Task, **_: Any) -> JobResult:
        result = full_result(task.to_dict())
        if task.job.job_id not in split_ids:
            return JobResult.from_dict(result)
        if task.split is None:  # the start: the plan of its split load (JobResult.split)
            return JobResult.from_dict({**result, "split": split_plan(split_chunks)})
        return JobResult.from_dict({**result, "chunks": split_chunks})

    ingest.job.run_job = run_job
    ingest.job.chunk.run_chunk = lambda task, **_: ChunkResult(
        task.job.job_id, task.split.chunk, status=Status.SUCCESS, rows=125_000_000
    )

    handles = {
        name: getattr(function_app, name).build().get_user_function()
        for name in ("ingest_run", "ingest_batch")
    }
    activities = {
        name: getattr(function_app, name).build().get_user_function()
        for name in ("plan_run", "ingest_table", "ingest_chunk", "record_failure", "write_audit")
    }

    def hold_snapshot(reference: dict[str, Any]) -> dict[str, Any]:
        """A split FULL table's snapshot holder: an activity of its own (its export is
        recorded when its table splits, as if it held it on another instance already)."""
        return {"job_id": "", "snapshot": "bench", "ended": "every chunk landed", "held_s": 0}

    activities["hold_snapshot"] = hold_snapshot

    def run_activity(call: Any) -> Any:
        try:
            result = activities[call.name](call.input)
        except Exception as exc:
            raise ActivityFailure(f"{type(exc).__name__}: {exc}") from exc
        if call.name == "ingest_table" and result.get("hold"):
            store = RunStore(call.input["destination"], call.input["run_id"])
            store.write_snapshot(result["job_id"], "bench-snapshot")
        return result

    run_id = f"run-bench-{tables}"
    sim = DurableSim(handles, run_activity, order=order, keep_histories=False)
    sim.start("ingest_run", run_id, {"run_id": run_id, "trigger": "http"})
    stats = sim.run()
    host = sim.hosts[run_id]
    assert host.state.get("isDone"), host.error
    assert host.state["output"]["jobs_succeeded"] == tables, host.state["output"]
    return stats


def load_baseline(rev: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{rev}:ingest/app/orchestration.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_orchestration.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_orchestration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_before(tables: int, workdir: Path, order: str, rev: str) -> Any:
    """The baseline revision's orchestrator with its activities' payloads."""
    import azure.durable_functions as df

    from ingest.plan import plan
    from tests.durable_harness import DurableSim

    baseline = load_baseline(rev)

    def orchestrator(context: Any) -> Any:
        return (yield from baseline.ingest_run(context))

    config = write_config(workdir / "jobs.csv", tables)
    run_id = f"run-bench-{tables}"
    planned = plan(str(config), destination=(workdir / "lake").as_uri(), run_id=run_id)
    settings = {
        "max_parallel": 8,
        "retry_max_attempts": 3,
        "retry_first_interval_ms": 30000,
        "retry_backoff": 2.0,
    }

    def run_activity(call: Any) -> Any:
        if call.name == "plan_run":
            return {
                "plan": planned,
                "settings": settings,
                "started_at": "2026-03-08T07:00:00+00:00",
            }
        if call.name == "ingest_table":
            return full_result(call.input)
        results = call.input["results"]
        return {
            "jobs_total": len(results),
            "jobs_succeeded": len(results),
            "jobs_failed": 0,
            "jobs_skipped": 0,
            "jobs_warned": 0,
            "rows_loaded": sum(r["rows_loaded"] for r in results),
            "failed_jobs": [],
            "run_id": run_id,
            "audit_path": str(workdir / "lake" / "metadata" / "audit_20260308.csv"),
            "audit_rows_added": len(results),
        }

    sim = DurableSim(
        {"ingest_run": df.Orchestrator.create(orchestrator)}, run_activity, order=order
    )
    sim.start("ingest_run", run_id, {"run_id": run_id, "trigger": "http"})
    return sim.run()


# ------------------------------------------------------------------------------ report


def kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 10 * 1024 else f"{size / 1024:.1f} KB"


def row(label: str, tables: int, stats: Any, wall: float) -> str:
    events, size, _ = stats.largest_history
    payload, what = stats.largest_payload
    return (
        f"| {label} | {tables:,} | {stats.cpu_s:.2f} s | {kb(stats.payload_sizes.get('plan_run', 0))} "
        f"| {kb(payload)} ({what}) | {events:,} events, {kb(size)} | {stats.events_replayed:,} "
        f"| {stats.episodes:,} "
        f"| {stats.orchestrations} | {wall:.0f} s |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100,1000", help="run sizes in tables (default 100,1000)"
    )
    parser.add_argument("--skip-before", action="store_true", help="measure only this checkout")
    parser.add_argument(
        "--split-tables",
        type=int,
        default=0,
        help="in 'after', this many tables split into --split-chunks chunks each (issue 29: 10)",
    )
    parser.add_argument(
        "--split-chunks", type=int, default=16, help="chunks per split table (default 16)"
    )
    parser.add_argument(
        "--before-sizes",
        default=None,
        help="sizes for the baseline (default: --sizes; 1,000 takes ~3-5 min of CPU there)",
    )
    parser.add_argument(
        "--baseline", default=BASELINE_REV, help=f"git revision of 'before' ({BASELINE_REV})"
    )
    parser.add_argument(
        "--order", choices=("fifo", "random"), default="fifo", help="activity completion order"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of 'after' per size; the lowest replay CPU is reported, as timeit does: "
        "the run least disturbed by the rest of the machine (default 5)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    for name in (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "INGEST_BATCH_SIZE",
        "INGEST_MAX_PARALLEL",
    ):
        os.environ.pop(name, None)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    before_sizes = [int(s) for s in (args.before_sizes or args.sizes).split(",") if s]

    import warnings

    warnings.filterwarnings("ignore")
    results: dict[tuple[str, int], Any] = {}
    plans = [("after", n) for n in sizes]
    if not args.skip_before:
        plans = [("before", n) for n in before_sizes] + plans
    for label, tables in plans:
        runs = []
        for attempt in range(args.repeat if label == "after" else 1):
            with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
                print(
                    f"{label}: {tables:,} tables, run {attempt + 1} ...",
                    file=sys.stderr,
                    flush=True,
                )
                gc.collect()
                started = time.monotonic()
                if label == "after":
                    stats = run_after(
                        tables, Path(tmp), args.order, args.split_tables, args.split_chunks
                    )
                else:
                    stats = run_before(tables, Path(tmp), args.order, args.baseline)
                runs.append((stats, time.monotonic() - started))
        runs.sort(key=lambda run: run[0].cpu_s)
        if len(runs) > 1:
            cpus = ", ".join(f"{stats.cpu_s:.2f}" for stats, _ in runs)
            print(f"{label} {tables:,}: replay CPU per run {cpus} s", file=sys.stderr)
        results[(label, tables)] = runs[0]

    print()
    print(
        "| code | tables | replay CPU | plan_run output | largest payload | largest history "
        "| events replayed | episodes | orchestrations | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (label, tables), (stats, wall) in results.items():
        print(row(label if label == "after" else f"before ({args.baseline})", tables, stats, wall))
    print("(replay CPU of 'after': the lowest of --repeat runs; wall: that run's wall clock)")
    print()
    for label in ("before", "after"):
        runs = sorted((n, s) for (lab, n), (s, _) in results.items() if lab == label)
        if len(runs) >= 2:
            (small, s_stats), (big, b_stats) = runs[0], runs[-1]
            ratio = b_stats.cpu_s / max(s_stats.cpu_s, 1e-9)
            work = b_stats.events_replayed / max(s_stats.events_replayed, 1)
            print(
                f"{label}: at {big:,} / at {small:,} tables: replay CPU {ratio:.1f}x, "
                f"events replayed {work:.1f}x"
            )
    after = [(n, s) for (lab, n), (s, _) in results.items() if lab == "after"]
    if after:
        payload = max(s.largest_payload[0] for _, s in after)
        history = max(s.largest_history[1] for _, s in after)
        print(
            f"after: largest payload {kb(payload)} (target <= 16 KB), largest history "
            f"{kb(history)} (target <= 512 KB)"
        )
        for n, s in after:
            if n == 1000:
                print(f"after: whole 1,000-table orchestration CPU {s.cpu_s:.1f} s (target < 30 s)")
        if len(after) >= 2:
            print(f"target: replay CPU ratio <= {TARGET_RATIO:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
