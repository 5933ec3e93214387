"""DuckDB over the lake through its views (`python -m ingest query`).

The DuckDB views written into the lake (`metadata/views/duckdb/*.sql`) are created in an
in-memory DuckDB; the query runs against them. Local lakes are read from disk. For `az://`
lakes DuckDB's own azure extension would have to be downloaded, which is not always possible
(no network, pinned machines): the lake's fsspec filesystem (adlfs, the same credentials the
framework uses) is registered with DuckDB instead, so `az://` paths read through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import duckdb

from ingest.errors import RequestError
from ingest.lake.destination import Destination
from ingest.lake.layout import VIEWS_DIR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    #: more rows than were fetched
    truncated: bool
    views: tuple[str, ...]


def connect(dest: Destination, fs: Any = None) -> Any:
    """An in-memory DuckDB that reads the lake's paths (no extension downloads)."""

    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    connection.execute("SET TimeZone = 'UTC'")
    if dest.protocol != "file":
        connection.register_filesystem(fs or dest.filesystem())
    return connection


def view_files(dest: Destination, fs: Any) -> list[str]:
    folder = dest.path(VIEWS_DIR, "duckdb")
    try:
        return sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".sql"))
    except FileNotFoundError:
        return []


def create_views(connection: Any, dest: Destination, fs: Any) -> list[str]:
    """Run every DuckDB view file of the lake; returns the files' names."""
    files = view_files(dest, fs)
    if not files:
        raise RequestError(
            f"no DuckDB views in {dest.display_url.rstrip('/')}/{VIEWS_DIR}/duckdb: every run "
            "writes them; for a lake loaded before, run `python -m ingest views`"
        )
    for path in files:
        with fs.open(path, "r", encoding="utf-8") as handle:
            connection.execute(handle.read())
    return [p.rsplit("/", 1)[-1] for p in files]


def run_query(destination: str, sql: str, max_rows: int = 100) -> QueryResult:
    """Run `sql` over the lake's views; fetches at most `max_rows` rows."""

    dest = Destination.from_url(destination)
    fs = dest.filesystem()
    connection = connect(dest, fs)
    try:
        names = create_views(connection, dest, fs)
        try:
            cursor = connection.execute(sql)
        except duckdb.Error as exc:
            raise RequestError(f"query failed: {exc}") from None
        columns = tuple(d[0] for d in cursor.description or ())
        rows = cursor.fetchmany(max_rows + 1) if columns else []
        return QueryResult(columns, rows[:max_rows], len(rows) > max_rows, tuple(names))
    finally:
        connection.close()
