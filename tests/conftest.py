"""Shared fixtures: real PostgreSQL, MariaDB and Azurite; isolated settings per test.

Every test gets its own PostgreSQL schema / MariaDB database / Azurite container / lake
folder, so tests never see each other's data and can run in any order.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services

PG_HOST, PG_PORT, PG_USER, PG_DB = "127.0.0.1", 5432, "postgres", "test"
MARIA_HOST, MARIA_PORT, MARIA_USER = "127.0.0.1", 3306, "root"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer secrets, vaults or telemetry leak into a test; scratch dirs per test."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "INGEST_", "AZURE_", "APPLICATIONINSIGHTS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INGEST_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("INGEST_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "otel")


def set_source_env(monkeypatch: pytest.MonkeyPatch, source: str, **values: Any) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"SOURCES__{source.upper()}__{key.upper()}", str(value))


# ------------------------------------------------------------------------------------------
# PostgreSQL


class PgSchema:
    """A fresh schema in the local PostgreSQL `test` database."""

    def __init__(self, name: str):
        import psycopg2

        self.name = name
        self.conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DB)
        self.conn.autocommit = True

    def execute(self, sql: str, params: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def secrets(self) -> dict[str, Any]:
        return {"host": PG_HOST, "port": PG_PORT, "database": PG_DB, "username": PG_USER}

    def use_as(self, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
        set_source_env(monkeypatch, source, **self.secrets())


@pytest.fixture
def pg() -> Iterator[PgSchema]:
    try:
        services.ensure_postgres()
    except services.MissingService as exc:
        pytest.fail(str(exc))
    schema = PgSchema(f"t_{uuid.uuid4().hex[:10]}")
    schema.execute(f'CREATE SCHEMA "{schema.name}"')
    schema.execute(f'SET search_path TO "{schema.name}"')
    try:
        yield schema
    finally:
        schema.execute(f'DROP SCHEMA "{schema.name}" CASCADE')
        schema.conn.close()


# ------------------------------------------------------------------------------------------
# MariaDB


class MariaDb:
    def __init__(self, database: str):
        import pymysql

        self.name = database
        self.conn = pymysql.connect(
            host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="", autocommit=True
        )

    def execute(self, sql: str, params: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def use_as(self, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
        set_source_env(
            monkeypatch,
            source,
            host=MARIA_HOST,
            port=MARIA_PORT,
            database=self.name,
            username=MARIA_USER,
        )


@pytest.fixture
def mariadb() -> Iterator[MariaDb]:
    try:
        services.ensure_mariadb()
    except services.MissingService as exc:
        pytest.fail(str(exc))
    db = MariaDb(f"t_{uuid.uuid4().hex[:10]}")
    db.execute(f"CREATE DATABASE `{db.name}` CHARACTER SET utf8mb4")
    db.execute(f"USE `{db.name}`")
    try:
        yield db
    finally:
        db.execute(f"DROP DATABASE `{db.name}`")
        db.conn.close()


# ------------------------------------------------------------------------------------------
# lakes


@pytest.fixture
def file_lake(tmp_path: Path) -> str:
    lake = tmp_path / "lake"
    lake.mkdir()
    return lake.as_uri()


@pytest.fixture(scope="session")
def azurite_connection_string() -> str:
    configured = os.environ.get("INGEST_TEST_AZURITE_CONNECTION_STRING")
    if configured and services.azurite_ready():
        return configured
    try:
        return services.ensure_azurite()
    except services.MissingService as exc:
        pytest.fail(str(exc))


@pytest.fixture
def azure_lake(azurite_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new Azurite container as the lake: returns its az:// URL; the process env holds the
    connection string (dev-only credential) as AZURE_STORAGE_CONNECTION_STRING."""
    from azure.storage.blob import BlobServiceClient

    container = f"lake-{uuid.uuid4().hex[:12]}"
    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    service.create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string)
    try:
        yield f"az://{container}"
    finally:
        service.delete_container(container)


def read_lake_table(destination: str, source: str, table: str) -> Any:
    """All rows of completed loads of a table in the lake, as one pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.identifiers import lake_schema_name
    from ingest.lake.destination import Destination
    from ingest.lake.layout import load_id_of
    from ingest.lake.loads import completed_load_ids, table_files

    dest = Destination.from_url(destination)
    fs = dest.filesystem()
    done = completed_load_ids(dest, source, lake_schema_name(f"{source}__{table}"), fs, table=table)
    tables = []
    for path in table_files(dest, source, table, fs):
        if load_id_of(path) in done:
            with fs.open(path, "rb") as handle:
                tables.append(pq.read_table(handle))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def lake_files(destination: str, source: str, table: str) -> list[str]:
    from ingest.lake.destination import Destination
    from ingest.lake.loads import table_files

    return table_files(Destination.from_url(destination), source, table)
