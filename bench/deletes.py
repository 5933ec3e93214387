"""Delete detection on a 10-million-row table: seconds and peak memory, against the floor.

`.venv/bin/python bench/deletes.py --help` (PostgreSQL on 127.0.0.1:5432; `python3 tasks.py
services` starts it).

The source is bench/run.py's 8-column `orders` table with --rows rows (generate_series; key
`order_id`, an index on `updated_at`), kept between runs as `bench.deletes_<rows>`. A first
load (`python -m ingest run`, INCREMENTAL, `delete_detection = keys`) puts it in a local lake;
then --deleted keys are deleted at the source (put back at the end, so the next run of the
benchmark finds the same table). Each measurement is a process of its own (wall time, and
peak RSS from wait4), interleaved over --repeat rounds, medians printed:

- floor: ConnectorX reads the key column, `SELECT order_id FROM ...`, into one Arrow table
  (`read_sql(return_type="arrow")`), and the same as a stream written to a local Parquet file
  (`arrow_stream`, the first half of the detection);
- the detection (`ingest.checks.deletes.DeleteDetection.detect()`, what a run does before it
  reads its rows): the source's keys streamed to a local Parquet file, then DuckDB's anti-join
  with the lake's current state (the view's own SELECT) in at most INGEST_STATE_MEMORY_MB,
  spilling to the working folder; once for each --memory value. It lands nothing (each
  round finds the same deleted keys); its two steps are timed apart;
- a process that only imports the same modules (the memory every process of the engine has);
- once at the end, a whole run (`python -m ingest run`) that detects the deletes and lands their
  markers, and one with nothing to detect any more.
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
SOURCE = "bench_pg"
JOB = "d1"
KEY = "order_id"


def bench_run() -> Any:
    """bench/run.py as a module (its table and PostgreSQL helpers)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------
# the children (one measurement each)


def child_floor(table: str, stream: bool, out: str) -> dict[str, Any]:
    import connectorx as cx
    import pyarrow.parquet as pq

    run = bench_run()
    imported = peak_mb()
    sql = f"SELECT {KEY} FROM {run.SCHEMA}.{table}"
    clock = time.perf_counter()
    rows = 0
    if stream:
        reader = cx.read_sql(run.CX_URL, sql, return_type="arrow_stream", batch_size=100_000)
        writer = None
        for batch in reader:
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is not None:
            writer.close()
    else:
        rows = cx.read_sql(run.CX_URL, sql, return_type="arrow").num_rows
    return {"rows": rows, "seconds": time.perf_counter() - clock, "imported_mb": imported}


def child_detect(config: str, lake: str, workdir: str) -> dict[str, Any]:
    """What a run's detection does (ingest.job.run._delete_detection, then detect())."""
    from ingest.checks import deletes
    from ingest.configuration import load_config
    from ingest.lake.destination import Destination
    from ingest.secrets import build_resolver
    from ingest.settings import Settings
    from ingest.sources import get_builder

    imported = peak_mb()
    settings = Settings.from_env()
    job = next(j for j in load_config(config).jobs if j.job_id == JOB)
    builder = get_builder(job.source_type)
    secrets = builder.secrets(build_resolver(settings.secrets_file, None), job.source_name)
    steps: dict[str, float] = {}
    original = deletes.write_source_keys

    def timed_keys(*args: Any, **kwargs: Any) -> int:
        clock = time.perf_counter()
        rows = original(*args, **kwargs)
        steps["keys_s"] = time.perf_counter() - clock
        steps["keys_peak_mb"] = peak_mb()
        return rows

    deletes.write_source_keys = timed_keys
    detection = deletes.DeleteDetection(
        job,
        builder,
        builder.engine(secrets),  # type: ignore[attr-defined]
        Destination.from_url(lake),
        (KEY,),
        Path(workdir),
        settings.state_memory_mb,
        dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        checked_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    clock = time.perf_counter()
    try:
        detection.detect()
    except Exception as exc:  # reported with the numbers (e.g. DuckDB out of memory)
        return {"error": f"{type(exc).__name__}: {exc}"[:200], "imported_mb": imported}
    total = time.perf_counter() - clock
    spill = Path(workdir) / "spill"
    return {
        "rows": detection.found.source_keys,
        "markers": detection.found.markers,
        "seconds": total,
        "imported_mb": imported,
        **steps,
        "compare_s": total - steps.get("keys_s", 0.0),
        "spill_left_mb": sum(p.stat().st_size for p in spill.rglob("*") if p.is_file()) / 2**20,
    }


def child_imports() -> dict[str, Any]:
    import connectorx  # noqa: F401

    from ingest.checks import deletes  # noqa: F401
    from ingest.configuration import load_config  # noqa: F401
    from ingest.sources import get_builder  # noqa: F401

    return {"imported_mb": peak_mb()}


# ------------------------------------------------------------------------------------------
# the parent


class Child:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        cmd = [PY, str(Path(__file__).resolve()), "--child", *args]
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stdout, stderr = proc.communicate()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"child failed: {' '.join(args)}\n{stderr.decode()[-3000:]}")
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        result.update(wall_s=wall, peak_mb=usage.ru_maxrss / 1024)
        return result


def whole_process(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{stdout.decode()}\n{stderr.decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout.decode()


def med(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows (10,000,000)")
    parser.add_argument("--deleted", type=int, default=10_000, help="keys deleted (10,000)")
    parser.add_argument(
        "--memory",
        default="512,256,128,64",
        help="INGEST_STATE_MEMORY_MB values, comma-separated (512,256,128,64; 512 is the default)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (3)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "floor":
            result = child_floor(rest[0], rest[1] == "stream", rest[2])
        elif kind == "detect":
            result = child_detect(*rest)
        else:
            result = child_imports()
        print(json.dumps(result))
        return 0

    run = bench_run()
    table = f"deletes_{args.rows}"
    run.create_orders(table, args.rows)
    env = dict(
        os.environ,
        RUNTIME__DLTHUB_TELEMETRY="false",
        PYTHONPATH=str(ROOT),
        **{f"SOURCES__{SOURCE.upper()}__{k}": v for k, v in _source_env(run).items()},
    )
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-deletes-"))
    env["INGEST_WORK_DIR"] = str(scratch / "work")
    lake = (scratch / "lake").as_uri()
    config = scratch / "jobs.csv"
    config.write_text(
        "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
        "watermark_column,primary_key,delete_detection\n"
        f"{JOB},Y,postgresql,{SOURCE},{run.SCHEMA},{table},INCREMENTAL,updated_at,{KEY},keys\n"
    )
    command = [PY, "-m", "ingest", "-q", "run", "--config", str(config), "--destination", lake]
    memories = [int(m) for m in args.memory.split(",") if m]
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PostgreSQL {run.psql('SHOW server_version')}, {dt.datetime.now(dt.UTC):%Y-%m-%d}",
        f"{args.rows:,} rows, {args.deleted:,} deleted; {args.repeat} rounds, medians",
    ]
    gone = f"{KEY} IN (SELECT {KEY} FROM {run.SCHEMA}.{table} ORDER BY {KEY} % 997, {KEY} LIMIT "
    try:
        wall, peak, _ = whole_process(command, env)
        lines.append(f"first load (python -m ingest run): {wall:.1f} s, peak {peak:.0f} MB")
        print(lines[-1], flush=True)
        run.psql(
            f"CREATE TABLE IF NOT EXISTS {run.SCHEMA}.{table}_gone AS SELECT * FROM "
            f"{run.SCHEMA}.{table} WHERE {gone}{args.deleted})"
        )
        run.psql(
            f"DELETE FROM {run.SCHEMA}.{table} WHERE {KEY} IN "
            f"(SELECT {KEY} FROM {run.SCHEMA}.{table}_gone)"
        )
        child = Child(env)
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeat):
            out = str(scratch / "keys.parquet")
            results.setdefault("imports", []).append(child("imports"))
            results.setdefault("floor", []).append(child("floor", table, "whole", out))
            results.setdefault("floor_stream", []).append(child("floor", table, "stream", out))
            for memory in memories:
                workdir = scratch / "detect"
                shutil.rmtree(workdir, ignore_errors=True)
                detect_env = {**env, "INGEST_STATE_MEMORY_MB": str(memory)}
                results.setdefault(f"detect_{memory}", []).append(
                    child("detect", str(config), lake, str(workdir), env=detect_env)
                )
        lines.append(f"\n{'':<46} {'wall s':>7} {'work s':>7} {'peak MB':>8} {'after imports':>14}")
        rows = [
            ("imports only (the engine's modules)", "imports"),
            ("floor: ConnectorX, key column -> Arrow table", "floor"),
            ("floor: ConnectorX stream -> local Parquet", "floor_stream"),
        ]
        rows += [
            (
                f"detection, INGEST_STATE_MEMORY_MB={m}" + (" (default)" if m == 512 else ""),
                f"detect_{m}",
            )
            for m in memories
        ]
        for title, key in rows:
            failed = [r["error"] for r in results[key] if "error" in r]
            if failed:
                lines.append(f"{title:<46} FAILED {len(failed)}x: {failed[0]}")
                continue
            got = results[key]
            work = f"{med(got, 'seconds'):7.2f}" if "seconds" in got[0] else f"{'-':>7}"
            lines.append(
                f"{title:<46} {med(got, 'wall_s'):7.2f} {work} {med(got, 'peak_mb'):8.0f} "
                f"{med(got, 'imported_mb'):14.0f}"
            )
        for memory in memories:
            got = [r for r in results[f"detect_{memory}"] if "error" not in r]
            if not got:
                continue
            lines.append(
                f"  detection at {memory} MB: keys to Parquet {med(got, 'keys_s'):.2f} s "
                f"(peak {med(got, 'keys_peak_mb'):.0f} MB), anti-join {med(got, 'compare_s'):.2f} s; "
                f"{got[0]['rows']:,} source keys, {got[0]['markers']:,} deleted keys found"
            )
        print("\n".join(lines[3:]), flush=True)
        wall, peak, _ = whole_process(command, env)
        lines.append(
            f"\na run that detects them and lands {args.deleted:,} markers (python -m ingest run, "
            f"INGEST_STATE_MEMORY_MB default): {wall:.1f} s, peak {peak:.0f} MB"
        )
        wall, peak, _ = whole_process(command, env)
        lines.append(f"the next run (nothing deleted since): {wall:.1f} s, peak {peak:.0f} MB")
    finally:
        run.psql(
            f"INSERT INTO {run.SCHEMA}.{table} SELECT * FROM {run.SCHEMA}.{table}_gone "
            f"ON CONFLICT DO NOTHING; DROP TABLE IF EXISTS {run.SCHEMA}.{table}_gone"
        )
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(lines))
    return 0


def _source_env(run: Any) -> dict[str, str]:
    pg = run.PG
    return {"HOST": pg["host"], "PORT": pg["port"], "DATABASE": pg["db"], "USERNAME": pg["user"]}


if __name__ == "__main__":
    raise SystemExit(main())
