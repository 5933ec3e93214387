"""Fixtures of the CDC tests: one logical-replication cluster per session, a database per
test (slots and publications are per database, so tests never see each other's)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cdc.cluster import Cluster, logical_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with logical_cluster() as made:
        yield made


class SourceDb:
    """A fresh database in the test cluster, autocommit."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.conn = cluster.connect(name)
        self.conn.autocommit = True
        self.conn.set_client_encoding("UTF8")

    def execute(self, sql: str, params: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def secrets(self) -> dict[str, str]:
        return {
            "host": self.cluster.host,
            "port": str(self.cluster.port),
            "database": self.name,
            "username": self.cluster.user,
        }


@pytest.fixture
def source(cluster: Cluster) -> Iterator[SourceDb]:
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    admin = cluster.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    db = SourceDb(cluster, name)
    try:
        yield db
    finally:
        db.conn.close()
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE database = %s AND active_pid IS NOT NULL",
                (name,),
            )
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
