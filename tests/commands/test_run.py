"""`python -m ingest run` end to end: failure isolation, exit codes, audit, no leaked secret."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.cli import main
from tests.conftest import read_lake_table, set_source_env
from tests.fixtures.run import COLUMNS, closed_port
from tests.fixtures.sheet import sheet_header


def audit_rows(lake_uri: str) -> list[dict]:
    day = dt.datetime.now(dt.UTC)
    path = Path(lake_uri.removeprefix("file://")) / "metadata" / f"audit_{day:%Y%m%d}.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def two_sources(pg, monkeypatch, tmp_path):
    """A good PostgreSQL source with two tables and a broken one (refused port, sentinel)."""
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 40) g")
    pg.execute("CREATE TABLE events (id int PRIMARY KEY, at timestamptz)")
    pg.execute(
        "INSERT INTO events SELECT g, timestamptz '2024-01-01' + (g || ' hours')::interval "
        "FROM generate_series(1, 30) g"
    )
    pg.use_as(monkeypatch, "good_pg")
    sentinel = f"S3ntinel-{uuid.uuid4().hex}"
    set_source_env(
        monkeypatch,
        "down_pg",
        host="127.0.0.1",
        port=closed_port(),
        database="test",
        username="postgres",
        password=sentinel,
    )
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        f"a1,Y,postgresql,good_pg,{pg.name},customers,FULL,,id\n"
        f"a2,Y,postgresql,down_pg,{pg.name},customers,FULL,,id\n"
        f"a3,Y,postgresql,good_pg,{pg.name},events,INCREMENTAL,at,id\n"
        f"a4,N,postgresql,good_pg,{pg.name},nothing_here,FULL,,\n"
        f"a5,Y,postgresql,good_pg,{pg.name},missing_table,FULL,,\n",
        encoding="utf-8",
    )
    return config, sentinel


def test_one_failing_job_fails_alone_with_exit_1(two_sources, file_lake, capsys, caplog):
    config, sentinel = two_sources
    caplog.set_level(logging.DEBUG)

    code = main(["run", "--config", str(config), "--destination", file_lake, "--workers", "2"])

    out = capsys.readouterr()
    assert code == 1
    rows = {r["job_id"]: r for r in audit_rows(file_lake)}
    assert set(rows) == {"a1", "a2", "a3", "a5"}  # disabled a4 never ran
    assert rows["a1"]["status"] == "SUCCESS" and rows["a1"]["rows_loaded"] == "40"
    assert rows["a3"]["status"] == "SUCCESS" and rows["a3"]["rows_loaded"] == "30"
    assert rows["a2"]["status"] == "FAILED"
    assert "cannot reach source 'down_pg'" in rows["a2"]["error"]
    assert "check the host/port secrets" in rows["a2"]["error"]
    assert rows["a5"]["status"] == "FAILED"
    assert "missing_table not found in source 'good_pg'" in rows["a5"]["error"]
    assert read_lake_table(file_lake, "good_pg", "customers").num_rows == 40
    # the sentinel password is nowhere: audit, terminal, logs
    audit_text = ""
    for path in (Path(file_lake.removeprefix("file://")) / "metadata").rglob("*"):
        if path.is_file():  # the audit, and the lease files naming their holders
            audit_text += path.read_text()
    assert sentinel not in audit_text
    assert sentinel not in out.out + out.err
    assert sentinel not in caplog.text
    assert "a2" in out.out and "FAILED" in out.out  # the summary table


def test_sentinel_never_in_results_or_exceptions(two_sources, file_lake):
    from ingest.plan import plan
    from ingest.settings import Settings
    from tests.fixtures.jobs import run_tasks_json

    config, sentinel = two_sources
    the_plan = plan(str(config), destination=file_lake, jobs=["a2"])
    (result,) = run_tasks_json(the_plan.tasks, Settings.from_env())
    assert result["status"] == "FAILED" and result["retriable"] is True
    assert sentinel not in json.dumps(result)
    assert sentinel not in json.dumps(the_plan.to_dict())


def test_second_run_same_day_appends_to_the_audit(two_sources, file_lake):
    config, _ = two_sources
    assert main(["run", "--config", str(config), "--destination", file_lake, "--job", "a1"]) == 0
    first = audit_rows(file_lake)
    assert main(["run", "--config", str(config), "--destination", file_lake, "--job", "a3"]) == 0
    second = audit_rows(file_lake)
    assert second[: len(first)] == first  # nothing lost
    assert [r["job_id"] for r in second] == ["a1", "a3"]
    assert len({r["run_id"] for r in second}) == 2
    for row in second:
        assert float(row["duration_s"]) > 0
        assert row["load_id"] and row["files_written"] == "1"
        assert row["started_at"] <= row["finished_at"]


def test_audit_retry_is_idempotent(file_lake):
    from tests.fixtures.audit import write_audit_json

    result = {
        "run_id": "r1",
        "job_id": "j1",
        "source_type": "sqlite",
        "source_name": "s",
        "table_name": "t",
        "load_type": "FULL",
        "status": "SUCCESS",
        "rows_loaded": 3,
    }
    run = {"run_id": "r1", "destination": file_lake, "results": [result]}
    assert write_audit_json(run)["audit_rows_added"] == 1
    assert write_audit_json(run)["audit_rows_added"] == 0  # a retried activity adds nothing
    assert len(audit_rows(file_lake)) == 1


def test_filters_select_jobs_and_sources(two_sources, file_lake, capsys):
    config, _ = two_sources
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--destination",
            file_lake,
            "--source",
            "good_pg",
            "--job",
            "a1",
            "--json",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["job_id"] for r in payload["results"]] == ["a1"]


def test_help_on_every_command():
    for command in ([], ["run"], ["validate"], ["plan"], ["demo"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ingest", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "usage: python -m ingest" in proc.stdout


def test_plan_and_validate(two_sources, capsys):
    config, _ = two_sources
    assert main(["plan", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    planned = [line.split()[0] for line in out.splitlines()[2:] if line.strip()][:-1]
    assert planned == ["a1", "a2", "a3", "a5"]  # a4 is disabled
    assert "4 job(s) would run" in out
    assert main(["validate", "--config", str(config)]) == 0
    assert "5 job(s), 4 enabled" in capsys.readouterr().out
    assert main(["validate", "--config", str(config), "--check-connections"]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1] == "a"}
    assert "OK" in lines["a1"] and "FAILED" in lines["a2"] and "FAILED" in lines["a5"]


def _without_permission_override() -> list[str]:
    """A command prefix that makes file permissions bind this process's children: root
    normally writes anywhere (CAP_DAC_OVERRIDE); `setpriv` drops that capability."""
    import os
    import shutil

    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root needs util-linux's setpriv to test a read-only lake")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def test_a_read_only_lake_ends_with_a_clear_message_not_a_traceback(tmp_path):
    """The jobs fail (they cannot write) and the audit step says which file it could not write
    and what to do, instead of an uncaught PermissionError; exit code 1."""
    import os
    import sqlite3

    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(5)])
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\n1,Y,sqlite,shop,items,FULL\n",
        encoding="utf-8",
    )
    lake = tmp_path / "lake"
    lake.mkdir()
    lake.chmod(0o555)  # read-only
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INGEST_"))}
    env.update(
        SOURCES__SHOP__PATH=str(database),
        INGEST_WORK_DIR=str(tmp_path / "work"),
        INGEST_SECRETS_FILE=str(tmp_path / "none.toml"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    try:
        done = subprocess.run(
            [
                *_without_permission_override(),
                sys.executable,
                "-m",
                "ingest",
                "run",
                "--config",
                str(config),
                "--destination",
                lake.as_uri(),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        lake.chmod(0o755)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert "audit: NOT WRITTEN" in done.stdout
    message = f"cannot write the audit file {lake}/metadata/audit_"
    assert message in done.stdout and message in done.stderr
    assert "(PermissionError: " in done.stdout
    assert "the lake is read-only for this process" in done.stdout
    assert "this user needs write permission on the folder" in done.stdout
    assert "Permission denied" in done.stdout  # the job's own FAILED row says why
    assert list(lake.iterdir()) == []  # nothing was written


@contextlib.contextmanager
def _small_disk(folder: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real file system of `size` (tmpfs) mounted at `folder`, optionally read-only."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _sqlite_run(tmp_path: Path, lake: Path) -> subprocess.CompletedProcess:
    import sqlite3

    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(5)])
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\n1,Y,sqlite,shop,items,FULL\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "INGEST_"))}
    env.update(
        SOURCES__SHOP__PATH=str(database),
        INGEST_WORK_DIR=str(tmp_path / "work"),
        INGEST_SECRETS_FILE=str(tmp_path / "none.toml"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    args = ["run", "--config", str(config), "--destination", str(lake)]
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def _leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_disk_ends_with_the_summary_and_a_clear_message(tmp_path, fault):
    """A lake on a real file system that is full (ENOSPC) or mounted read-only (EROFS): the run
    ends with exit 1, the results table, the summary line and a message naming the audit file
    and what to do; no traceback, no scratch file left behind."""
    with _small_disk(tmp_path / "disk", "512k", read_only=fault == "read-only") as disk:
        lake = disk / "lake"
        if fault == "full":
            lake.mkdir()
            descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
            try:  # fill the disk to the last byte
                with contextlib.suppress(OSError):
                    while os.write(descriptor, b"\0" * 4096):
                        pass
            finally:
                os.close(descriptor)
        done = _sqlite_run(tmp_path, lake)
        leftovers = _leftovers(disk)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert "job  source  table" in done.stdout and "audit: NOT WRITTEN" in done.stdout
    assert "cannot write the audit file" in done.stdout
    expected = "disk is full" if fault == "full" else "read-only"
    assert expected in done.stdout, done.stdout
    assert leftovers == []
