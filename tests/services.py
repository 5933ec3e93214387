"""Local services the test suite needs: PostgreSQL, MariaDB and Azurite (the ADLS stand-in).

Used by `tasks.py` (before pytest starts) and by the pytest fixtures. Standard library only;
psycopg2 / pymysql are used when importable, for the "database exists" step.

Each `ensure_*` function returns when the service answers on its TCP port, starts it when it
is installed but not running, and raises `MissingService` (whose message is the exact thing to
install or run) when it cannot be started from here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
POSTGRES_PORT = 5432
MARIADB_PORT = 3306
AZURITE_BLOB_PORT = 10000
AZURITE_QUEUE_PORT = 10001
AZURITE_TABLE_PORT = 10002
TEST_DATABASE = "test"
START_TIMEOUT_S = 30.0

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_DEFAULT_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
AZURITE_DEFAULT_LOCATION = REPO_ROOT / ".azurite"

INSTALL_POSTGRES = "apt-get install postgresql"
INSTALL_MARIADB = "apt-get install mariadb-server"
INSTALL_NODE = "install Node.js 20 and npm (Debian: apt-get install nodejs npm)"
INSTALL_AZURITE = "npm install   (in the repository root; `python3 tasks.py test` does it)"


class MissingService(RuntimeError):
    """A service is not installed or cannot be started from here.

    `instruction` is what the user has to install or run; `str(exc)` includes it.
    """

    def __init__(self, service: str, instruction: str, detail: str = "") -> None:
        self.service = service
        self.instruction = instruction
        self.detail = detail
        message = f"{service} is not available"
        if detail:
            message += f" ({detail})"
        message += f": {instruction}"
        super().__init__(message)


# --------------------------------------------------------------------------- helpers


def port_open(port: int, host: str = HOST, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = HOST, timeout: float = START_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if port_open(port, host):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _resolve(binary: str | os.PathLike[str]) -> str | None:
    """Absolute path of an executable given as a name (looked up in PATH) or a path."""
    text = os.fspath(binary)
    if os.sep in text:
        return text if os.path.isfile(text) and os.access(text, os.X_OK) else None
    return shutil.which(text) or shutil.which(text, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _run(cmd: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- PostgreSQL


def postgres_ready(host: str = HOST, port: int = POSTGRES_PORT) -> bool:
    return port_open(port, host)


def _postgres_versions(etc_dir: Path) -> list[str]:
    try:
        return sorted((p.name for p in etc_dir.iterdir() if (p / "main").is_dir()), key=_verkey)
    except OSError:
        return []


def _verkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else 0 for x in v.split("."))


def ensure_postgres(
    host: str = HOST,
    port: int = POSTGRES_PORT,
    *,
    pg_ctlcluster: str | os.PathLike[str] = "pg_ctlcluster",
    etc_dir: str | os.PathLike[str] = "/etc/postgresql",
    database: str | None = TEST_DATABASE,
    timeout: float = START_TIMEOUT_S,
) -> None:
    """Make PostgreSQL answer on host:port (starting the Debian cluster when needed)."""
    if not postgres_ready(host, port):
        binary = _resolve(pg_ctlcluster)
        versions = _postgres_versions(Path(etc_dir))
        if binary is None or not versions:
            raise MissingService("PostgreSQL", INSTALL_POSTGRES, "server not installed")
        version = versions[-1]
        cmd = [binary, "--skip-systemctl-redirect", version, "main", "start"]
        if not _is_root():
            raise MissingService(
                "PostgreSQL",
                "run as root: sudo " + " ".join(cmd),
                f"not running on {host}:{port}",
            )
        result = _run(cmd)
        # "already running" is fine; anything else is reported if the port stays closed.
        if not wait_for_port(port, host, timeout):
            raise MissingService(
                "PostgreSQL",
                f"check the server log in /var/log/postgresql/ (started with: {' '.join(cmd)})",
                f"did not answer on {host}:{port} within {timeout:.0f}s; "
                f"pg_ctlcluster said: {(result.stderr or result.stdout).strip()[:500]}",
            )
    if database:
        _ensure_postgres_database(host, port, database)


def _ensure_postgres_database(host: str, port: int, database: str) -> None:
    """Create the test database when missing (best effort: needs psycopg2 or root + psql)."""
    try:
        import psycopg2  # type: ignore[import-not-found]
    except ImportError:
        psycopg2 = None
    if psycopg2 is not None:
        for user in ("postgres", "root"):
            try:
                conn = psycopg2.connect(
                    host=host,
                    port=port,
                    user=user,
                    dbname="postgres",
                    connect_timeout=5,
                )
            except psycopg2.Error:
                continue  # try the next user; the server answers but refuses this one
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{database}"')
            finally:
                conn.close()
            return
    psql, runuser = shutil.which("psql"), shutil.which("runuser")
    if psql and runuser and _is_root():
        exists = _run(
            [runuser, "-u", "postgres", "--", psql, "-p", str(port), "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{database}'"]
        )  # fmt: skip
        if exists.returncode == 0 and exists.stdout.strip() != "1":
            _run([runuser, "-u", "postgres", "--", psql, "-p", str(port), "-c",
                  f'CREATE DATABASE "{database}"'])  # fmt: skip


# --------------------------------------------------------------------------- MariaDB


def mariadb_ready(host: str = HOST, port: int = MARIADB_PORT) -> bool:
    return port_open(port, host)


def ensure_mariadb(
    host: str = HOST,
    port: int = MARIADB_PORT,
    *,
    mariadbd: str | os.PathLike[str] = "/usr/sbin/mariadbd",
    run_dir: str | os.PathLike[str] = "/run/mysqld",
    database: str | None = TEST_DATABASE,
    timeout: float = START_TIMEOUT_S,
) -> None:
    """Make MariaDB answer on host:port (starting mariadbd in the background when needed)."""
    if not mariadb_ready(host, port):
        binary = _resolve(mariadbd)
        if binary is None:
            raise MissingService("MariaDB", INSTALL_MARIADB, "server not installed")
        ssd = _resolve("start-stop-daemon")
        cmd = [ssd or "start-stop-daemon", "--start", "--oknodo", "--background",
               "--exec", binary]  # fmt: skip
        if not _is_root():
            raise MissingService(
                "MariaDB",
                f"run as root: sudo install -d -o mysql -g mysql {run_dir} && sudo "
                + " ".join(cmd),
                f"not running on {host}:{port}",
            )
        if ssd is None:
            raise MissingService("MariaDB", "apt-get install dpkg", "start-stop-daemon missing")
        _prepare_run_dir(Path(run_dir))
        result = _run(cmd)
        if not wait_for_port(port, host, timeout):
            raise MissingService(
                "MariaDB",
                f"check the server log (journal or /var/log/mysql/) (started with: {' '.join(cmd)})",
                f"did not answer on {host}:{port} within {timeout:.0f}s; "
                f"start-stop-daemon said: {(result.stderr or result.stdout).strip()[:500]}",
            )
    if database:
        _ensure_mariadb_database(host, port, database)


def _prepare_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        shutil.chown(run_dir, user="mysql", group="mysql")
    except (LookupError, PermissionError, OSError):
        pass


def _ensure_mariadb_database(host: str, port: int, database: str) -> None:
    """Create the test database when missing (best effort: needs pymysql or the client)."""
    statement = f"CREATE DATABASE IF NOT EXISTS `{database}`"
    try:
        import pymysql  # type: ignore[import-not-found]
    except ImportError:
        pymysql = None
    if pymysql is not None:
        try:
            conn = pymysql.connect(
                host=host, port=port, user="root", password="", connect_timeout=5
            )
        except pymysql.err.Error:
            return  # cannot log in as root: leave the database to the test fixtures
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client:
        _run([client, "-h", host, "-P", str(port), "-u", "root", "-e", statement])


# --------------------------------------------------------------------------- Azurite


def azurite_connection_string(
    host: str = HOST,
    blob_port: int = AZURITE_BLOB_PORT,
    queue_port: int = AZURITE_QUEUE_PORT,
    table_port: int = AZURITE_TABLE_PORT,
) -> str:
    base = f"http://{host}:{{}}/{AZURITE_ACCOUNT_NAME}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT_NAME};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint={base.format(blob_port)};"
        f"QueueEndpoint={base.format(queue_port)};"
        f"TableEndpoint={base.format(table_port)};"
    )


def azurite_ready(host: str = HOST, blob_port: int = AZURITE_BLOB_PORT) -> bool:
    return port_open(blob_port, host)


def ensure_azurite(
    location_dir: str | os.PathLike[str] = AZURITE_DEFAULT_LOCATION,
    *,
    host: str = HOST,
    blob_port: int = AZURITE_BLOB_PORT,
    queue_port: int = AZURITE_QUEUE_PORT,
    table_port: int = AZURITE_TABLE_PORT,
    azurite_bin: str | os.PathLike[str] = AZURITE_DEFAULT_BIN,
    timeout: float = START_TIMEOUT_S,
) -> str:
    """Make Azurite answer on host:blob_port; return its connection string.

    When nothing answers, starts `azurite` detached from this process (it outlives the caller,
    so later runs reuse it), with data, `azurite.log` and `azurite.pid` in `location_dir`.
    """
    conn = azurite_connection_string(host, blob_port, queue_port, table_port)
    if azurite_ready(host, blob_port):
        return conn
    binary = _resolve(azurite_bin)
    if binary is None:
        if shutil.which("node") is None or shutil.which("npm") is None:
            raise MissingService("Azurite", INSTALL_NODE, "node/npm not found")
        raise MissingService("Azurite", INSTALL_AZURITE, f"{os.fspath(azurite_bin)} not found")
    if shutil.which("node") is None:
        raise MissingService("Azurite", INSTALL_NODE, "node not found")
    location = Path(location_dir).resolve()
    location.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary, "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        "--location", str(location),
        "--blobHost", host, "--blobPort", str(blob_port),
        "--queueHost", host, "--queuePort", str(queue_port),
        "--tableHost", host, "--tablePort", str(table_port),
    ]  # fmt: skip
    if os.environ.get("AZURITE_DEBUG"):  # logs every request; off unless asked for
        cmd += ["--debug", str(location / "debug.log")]
    log_path = location / "azurite.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=str(location),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: not killed with the caller's process group
            close_fds=True,
        )
    (location / "azurite.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if azurite_ready(host, blob_port):
            return conn
        if proc.poll() is not None:
            # Another process may have started Azurite at the same moment (port in use).
            if wait_for_port(blob_port, host, timeout=2.0):
                return conn
            raise MissingService(
                "Azurite",
                f"see {log_path}",
                f"azurite exited with code {proc.returncode}: {_tail(log_path)}",
            )
        time.sleep(0.25)
    raise MissingService(
        "Azurite",
        f"see {log_path}",
        f"did not answer on {host}:{blob_port} within {timeout:.0f}s",
    )


def stop_azurite(
    location_dir: str | os.PathLike[str] = AZURITE_DEFAULT_LOCATION,
) -> bool:
    """Stop an Azurite started by `ensure_azurite` with this location; True if one was stopped."""
    pid_file = Path(location_dir) / "azurite.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session/process group (node + children)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    except PermissionError:
        return False
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _tail(path: Path, limit: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- all at once


def ensure_all(
    azurite_location: str | os.PathLike[str] = AZURITE_DEFAULT_LOCATION,
) -> dict:
    """Ensure every service; collect all problems before raising (one MissingService each).

    Returns {"azurite_connection_string": ...}. Raises `ServicesMissing` listing each problem.
    """
    problems: list[MissingService] = []
    result: dict[str, str] = {}
    for func in (ensure_postgres, ensure_mariadb):
        try:
            func()
        except MissingService as exc:
            problems.append(exc)
    try:
        result["azurite_connection_string"] = ensure_azurite(azurite_location)
    except MissingService as exc:
        problems.append(exc)
    if problems:
        raise ServicesMissing(problems)
    return result


class ServicesMissing(MissingService):
    def __init__(self, problems: list[MissingService]) -> None:
        self.problems = problems
        RuntimeError.__init__(self, "\n".join(str(p) for p in problems))
        self.service = ", ".join(p.service for p in problems)
        self.instruction = "\n".join(p.instruction for p in problems)
        self.detail = ""


def status() -> dict[str, bool]:
    return {
        f"PostgreSQL {HOST}:{POSTGRES_PORT}": postgres_ready(),
        f"MariaDB {HOST}:{MARIADB_PORT}": mariadb_ready(),
        f"Azurite {HOST}:{AZURITE_BLOB_PORT}": azurite_ready(),
    }


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/services.py
    try:
        info = ensure_all()
    except MissingService as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    for name, ok in status().items():
        print(f"{name}: {'up' if ok else 'DOWN'}")
    print(info["azurite_connection_string"])
