"""Faults at the source end in a clear, bounded result: a locked table, a statement that runs
too long, a job past its timeout, a connection that breaks, a database that does not exist.

Real PostgreSQL (both read paths: the ConnectorX fast path and dlt's pyarrow backend) and
MariaDB; the lock is held by another real session, the connection is terminated by the server.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg2
import pymysql
import pytest

from ingest.config import JobConfig
from ingest.job.progress import Deadline, JobTimeout
from tests.conftest import MARIA_HOST, MARIA_PORT, MARIA_USER, PG_DB, PG_HOST, PG_PORT, PG_USER
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, job, run


def _pg_session():
    connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DB)
    return connection


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
@pytest.mark.parametrize("load_type", ["FULL", "INCREMENTAL"])
def test_a_locked_table_fails_the_job_retriably_within_the_lock_timeout(
    pg, file_lake, monkeypatch, backend, load_type
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 50)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    monkeypatch.setenv("INGEST_LOCK_TIMEOUT_S", "2")
    holder = _pg_session()
    try:
        with holder.cursor() as cursor:  # a migration holds the table
            cursor.execute(f'LOCK TABLE "{pg.name}".orders IN ACCESS EXCLUSIVE MODE')
        result = run(job(pg, load_type=load_type), file_lake, "r1")
    finally:
        holder.rollback()
        holder.close()
    assert result["status"] == "FAILED"
    assert result["retriable"] is True
    assert "INGEST_LOCK_TIMEOUT_S" in result["error"] and "locked" in result["error"]
    assert result["duration_s"] < 60  # bounded by the lock timeout, not by the lock holder
    assert result["rows_loaded"] == 0

    again = run(job(pg, load_type=load_type), file_lake, "r2")  # the lock is gone: it loads
    assert again["status"] == "SUCCESS", again["error"]
    assert again["rows_loaded"] == 50


SLOW_VIEW = """
CREATE FUNCTION slowly(x bigint) RETURNS bigint VOLATILE LANGUAGE sql
AS 'SELECT pg_sleep(0.01); SELECT x';
CREATE VIEW slow_orders AS
SELECT slowly(order_id) AS order_id, qty, created_at, amount, customer, note, updated_at
FROM orders
"""


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_a_statement_past_its_timeout_is_cancelled_and_retriable(
    pg, file_lake, monkeypatch, backend
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)  # 10 s through the slow view
    pg.execute(SLOW_VIEW)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    monkeypatch.setenv("INGEST_STATEMENT_TIMEOUT_S", "1")
    result = run(job(pg, table="slow_orders", load_type="FULL"), file_lake, "r1")
    assert result["status"] == "FAILED" and result["retriable"] is True
    assert "INGEST_STATEMENT_TIMEOUT_S" in result["error"], result["error"]
    assert result["duration_s"] < 60


def test_the_jobs_own_timeout_bounds_its_statements(pg, file_lake, monkeypatch):
    """A job's `timeout` column (here 2 s) is its deadline and its statements' limit."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)
    pg.execute(SLOW_VIEW)
    pg.use_as(monkeypatch, SOURCE)
    result = run(job(pg, table="slow_orders", load_type="FULL", timeout_s=2.0), file_lake, "r1")
    assert result["status"] == "FAILED" and result["retriable"] is True
    assert "timeout" in result["error"]
    assert result["duration_s"] < 60


def test_the_deadline_stops_a_job_between_batches():
    config = JobConfig("d1", True, "sqlite", "s", "t", "FULL")
    deadline = Deadline(config, 0.05)
    deadline.check()
    time.sleep(0.1)
    with pytest.raises(JobTimeout, match=r"timeout of 0.05 s \(INGEST_JOB_TIMEOUT_S\)"):
        deadline.check()


#: terminates the job's long read from another process (ConnectorX holds the GIL while it
#: reads, so a thread of the test process would not get to run); prints how many it ended
KILLER = """
import sys, time, psycopg2
session = psycopg2.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3],
                           dbname=sys.argv[4])
session.autocommit = True
deadline, ended = time.monotonic() + 90, 0
while not ended and time.monotonic() < deadline:
    with session.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE state = 'active' AND now() - query_start > interval '0.5 s' "
            "AND (query ILIKE %s OR query ILIKE %s) AND query NOT ILIKE %s "
            "AND query NOT ILIKE %s AND pid <> pg_backend_pid()",
            # ConnectorX: COPY (SELECT ... FROM slow_orders); dlt's backend: FETCH from a cursor
            ("%from %slow_orders%", "fetch %", "%count(%", "%pg_catalog%"),
        )
        ended = len(cursor.fetchall())
    time.sleep(0.05)
print(ended)
"""


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_a_connection_terminated_mid_read_is_a_retriable_failure(
    pg, file_lake, monkeypatch, backend
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)  # 10 s through the slow view: time to terminate it
    pg.execute(SLOW_VIEW)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    killer = subprocess.Popen(
        [sys.executable, "-c", KILLER, PG_HOST, str(PG_PORT), PG_USER, PG_DB],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        outcome = run(job(pg, table="slow_orders", load_type="FULL"), file_lake, "r1")
    finally:
        ended, _ = killer.communicate(timeout=120)
    assert int(ended.strip() or 0) == 1, "the job's read never showed up in pg_stat_activity"
    assert outcome["status"] == "FAILED"
    assert outcome["retriable"] is True, outcome["error"]
    assert "broke" in outcome["error"], outcome["error"]


def test_a_database_that_does_not_exist_is_not_retried(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv(f"SOURCES__{SOURCE.upper()}__DATABASE", "no_such_database_x")
    result = run(job(pg, load_type="FULL"), file_lake, "r1")
    assert result["status"] == "FAILED"
    assert result["retriable"] is False, result["error"]
    assert "no_such_database_x" in result["error"] and "will not help" in result["error"]


# ------------------------------------------------------------------------------------------
# MariaDB


def test_a_locked_mariadb_table_fails_within_the_lock_timeout(mariadb, file_lake, monkeypatch):
    mariadb.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    mariadb.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    mariadb.use_as(monkeypatch, "maria")
    monkeypatch.setenv("INGEST_LOCK_TIMEOUT_S", "2")
    holder = pymysql.connect(
        host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="", database=mariadb.name
    )
    config = JobConfig("m1", True, "mysql", "maria", "items", "FULL", schema_name=mariadb.name)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLES items WRITE")
        result = run(config, file_lake, "r1")
    finally:
        holder.close()
    assert result["status"] == "FAILED" and result["retriable"] is True, result["error"]
    assert "INGEST_LOCK_TIMEOUT_S" in result["error"]
    assert result["duration_s"] < 60
    assert run(config, file_lake, "r2")["rows_loaded"] == 2


def test_a_mariadb_statement_past_its_timeout_is_cancelled(mariadb, file_lake, monkeypatch):
    mariadb.execute("CREATE TABLE items (id INT PRIMARY KEY)")
    mariadb.executemany("INSERT INTO items VALUES (%s)", [(i,) for i in range(400)])
    mariadb.execute("CREATE VIEW slow_items AS SELECT id, SLEEP(0.01) AS pause FROM items")
    mariadb.use_as(monkeypatch, "maria")
    monkeypatch.setenv("INGEST_STATEMENT_TIMEOUT_S", "1")
    config = JobConfig("m2", True, "mysql", "maria", "slow_items", "FULL", schema_name=mariadb.name)
    result = run(config, file_lake, "r1")
    assert result["status"] == "FAILED" and result["retriable"] is True, result["error"]
    assert "INGEST_STATEMENT_TIMEOUT_S" in result["error"]
