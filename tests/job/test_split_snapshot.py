"""The exported snapshot's parts (`ingest.job.split_snapshot`) against the local PostgreSQL:
who wants one (the builder's capability, the switch, the kind of load), how long a holder
holds it, and how a snapshot whose exporter ended is recognised."""

from __future__ import annotations

import dataclasses

import psycopg2
import pytest

from ingest.job import split_snapshot
from ingest.model.task import Backfill, Task
from ingest.settings import Settings
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders
from tests.fixtures.orders import job as pg_job


def _task(job, **extra) -> Task:
    return Task("run-1", job, "file:///tmp/lake", **extra)


def test_who_reads_an_exported_snapshot(pg):
    full = pg_job(pg, load_type="FULL", split=4)
    on = Settings.from_env({})
    off = Settings.from_env({"INGEST_SPLIT_SNAPSHOT": "off"})
    assert split_snapshot.wanted(_task(full), on)
    assert not split_snapshot.wanted(_task(full), off)
    assert not split_snapshot.wanted(_task(pg_job(pg, load_type="INCREMENTAL")), on)
    assert not split_snapshot.wanted(_task(full, backfill=Backfill("2024-01-01")), on)
    mysql = dataclasses.replace(full, source_type="mysql")  # exports none (its capability)
    assert not split_snapshot.wanted(_task(mysql), on)
    with pytest.raises(Exception, match="INGEST_SPLIT_SNAPSHOT"):
        Settings.from_env({"INGEST_SPLIT_SNAPSHOT": "maybe"})


def test_a_holder_holds_until_told_its_bound_or_its_connection_ends(pg, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 10)
    pg.use_as(monkeypatch, SOURCE)
    task = _task(pg_job(pg, load_type="FULL", split=2))
    settings = Settings.from_env()
    held = split_snapshot.export(task, settings)
    assert held is not None
    try:
        answers = iter([None, None, "every chunk of 2 landed"])
        assert split_snapshot.hold(held, lambda: next(answers), 60, 0.01) == (
            "every chunk of 2 landed"
        )
        assert split_snapshot.hold(held, lambda: None, 0.2, 0.05).startswith("bound: held")
        assert split_snapshot.importable(task, settings, held.id)
        pid = held.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert split_snapshot.hold(held, lambda: None, 60, 0.01) == (
            "lost: its connection to the source ended"
        )
        assert not split_snapshot.importable(task, settings, held.id)
    finally:
        held.close()


def test_an_import_of_an_ended_snapshot_is_recognised(pg):
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cur.fetchone()
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        conn.rollback()
    finally:
        conn.close()
    assert split_snapshot.gone(raised.value)
    try:
        raise RuntimeError("reading failed") from raised.value
    except RuntimeError as wrapped:
        assert split_snapshot.gone(wrapped)
    assert not split_snapshot.gone(RuntimeError("connection refused"))
