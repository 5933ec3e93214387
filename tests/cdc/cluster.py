"""A PostgreSQL cluster of our own with `wal_level = logical`, for the CDC tests: made with the
installed server binaries (initdb) in a temporary folder, on a free port, as the `postgres`
OS user when the tests run as root (initdb refuses root), and removed afterwards. The shared
server on 5432 is never reconfigured."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _server_bin() -> Path:
    """PG_BIN, else the newest installed Debian PostgreSQL (/usr/lib/postgresql/<n>/bin)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = _server_bin()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Cluster:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.host, self.user, self.database = "127.0.0.1", "postgres", "postgres"

    def connect(self, database: str | None = None, **extra: Any) -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            **extra,
        )


@contextmanager
def logical_cluster() -> Iterator[Cluster]:
    if not (BIN / "initdb").exists():
        raise RuntimeError(
            f"no PostgreSQL server binaries in {BIN}: install the server (python3 tasks.py "
            "services) or set PG_BIN to the folder holding initdb and pg_ctl"
        )
    root = Path(tempfile.mkdtemp(prefix="ingest-cdc-pg-"))
    data = root / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    started = False
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
            "-c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=64MB -c max_connections=60"
        )
        subprocess.run(
            _as_server_user(
                [
                    str(BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(root / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        started = True
        cluster = Cluster(root, port)
        deadline = time.monotonic() + 30
        while True:
            try:
                cluster.connect().close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield cluster
    finally:
        if started:
            subprocess.run(
                _as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                env=env,
            )
        shutil.rmtree(root, ignore_errors=True)
