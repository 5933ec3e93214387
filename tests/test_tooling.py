"""The developer tooling (tests/services.py, tasks.py) against the real local services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import services

#: The environment pytest was started with (conftest's autouse fixture scrubs INGEST_* later).
LAUNCH_ENV = dict(os.environ)

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS = REPO_ROOT / "tasks.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- real services


def test_postgres_accepts_a_query() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    services.ensure_postgres()
    assert services.postgres_ready()
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 40 + 2")
            assert cur.fetchone() == (42,)
    finally:
        conn.close()


def test_mariadb_accepts_a_query() -> None:
    pymysql = pytest.importorskip("pymysql")
    services.ensure_mariadb()
    assert services.mariadb_ready()
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 40 + 2")
            assert cur.fetchone() == (42,)
    finally:
        conn.close()


def _blob_roundtrip(connection_string: str) -> None:
    blob = pytest.importorskip("azure.storage.blob")
    client = blob.BlobServiceClient.from_connection_string(connection_string)
    name = f"tooling-{uuid.uuid4().hex[:12]}"
    container = client.create_container(name)
    try:
        container.upload_blob("hello/world.txt", b"hi")
        assert name in [c.name for c in client.list_containers(name_starts_with="tooling-")]
        assert [b.name for b in container.list_blobs()] == ["hello/world.txt"]
        assert container.download_blob("hello/world.txt").readall() == b"hi"
    finally:
        container.delete_container()


def test_azurite_blob_container_create_and_list() -> None:
    connection_string = services.ensure_azurite(services.AZURITE_DEFAULT_LOCATION)
    assert "AccountName=devstoreaccount1" in connection_string
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1" in connection_string
    _blob_roundtrip(connection_string)


def test_ensure_azurite_starts_a_fresh_instance_on_other_ports(tmp_path: Path) -> None:
    if not Path(services.AZURITE_DEFAULT_BIN).exists():
        pytest.skip("node_modules/.bin/azurite not installed (python3 tasks.py test does it)")
    ports = {
        "blob_port": free_port(),
        "queue_port": free_port(),
        "table_port": free_port(),
    }
    location = tmp_path / "azurite"
    try:
        connection_string = services.ensure_azurite(location, **ports)
        assert f"127.0.0.1:{ports['blob_port']}/devstoreaccount1" in connection_string
        assert (location / "azurite.pid").exists()
        assert (location / "azurite.log").exists()
        _blob_roundtrip(connection_string)
        # Second call reuses the running instance.
        assert services.ensure_azurite(location, **ports) == connection_string
    finally:
        assert services.stop_azurite(location)
    assert not services.port_open(ports["blob_port"])


# --------------------------------------------------------------------------- missing binaries


def test_missing_postgres_binary_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(services.MissingService) as caught:
        services.ensure_postgres(port=free_port(), pg_ctlcluster=tmp_path / "no-pg_ctlcluster")
    assert caught.value.instruction == "apt-get install postgresql"
    assert "apt-get install postgresql" in str(caught.value)


def test_missing_mariadb_binary_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(services.MissingService) as caught:
        services.ensure_mariadb(port=free_port(), mariadbd=tmp_path / "no-mariadbd")
    assert caught.value.instruction == "apt-get install mariadb-server"


def test_missing_azurite_binary_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    port = free_port()
    with pytest.raises(services.MissingService) as caught:
        services.ensure_azurite(tmp_path, blob_port=port, azurite_bin=tmp_path / "no-azurite")
    assert "npm install" in caught.value.instruction

    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npm
    with pytest.raises(services.MissingService) as caught:
        services.ensure_azurite(tmp_path, blob_port=port, azurite_bin=tmp_path / "no-azurite")
    assert "install Node.js 20 and npm" in caught.value.instruction


def test_running_services_need_no_binary(tmp_path: Path) -> None:
    """A server that already answers is used as is, whatever the binary path says (the
    binaries named here do not exist: using one would raise)."""
    missing = tmp_path / "none"
    assert services.ensure_postgres(pg_ctlcluster=missing, database=None) is None
    assert services.ensure_mariadb(mariadbd=missing, database=None) is None
    connection = services.ensure_azurite(tmp_path, azurite_bin=missing)
    assert f"BlobEndpoint=http://{services.HOST}:{services.AZURITE_BLOB_PORT}/" in connection
    assert services.postgres_ready() and services.mariadb_ready() and services.azurite_ready()
    assert not missing.exists() and list(tmp_path.iterdir()) == []  # nothing was started


# --------------------------------------------------------------------------- tasks.py


def run_tasks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TASKS), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["demo", "test", "services", "bench", "lock"])
def test_tasks_help(command: str) -> None:
    result = run_tasks(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python3 tasks.py {command}")


def test_tasks_usage_errors() -> None:
    assert run_tasks().returncode == 2
    result = run_tasks("nonsense")
    assert result.returncode == 2
    assert "unknown command" in result.stderr


def test_tasks_services_reports_status() -> None:
    result = run_tasks("services")
    assert result.returncode == 0, result.stderr
    assert "Azurite 127.0.0.1:10000" in result.stdout
    assert "DOWN" not in result.stdout
    assert "INGEST_TEST_AZURITE_CONNECTION_STRING=DefaultEndpointsProtocol=http;" in result.stdout


def test_test_run_gets_the_azurite_connection_string() -> None:
    connection_string = LAUNCH_ENV.get("INGEST_TEST_AZURITE_CONNECTION_STRING")
    if connection_string is None:
        pytest.skip("not run through `python3 tasks.py test`")
    assert connection_string == services.azurite_connection_string()
    assert LAUNCH_ENV["RUNTIME__DLTHUB_TELEMETRY"] == "false"
    assert LAUNCH_ENV["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] == "true"
    assert LAUNCH_ENV["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"] == "otel"


# --------------------------------------------------------------------------- system packages


def _tasks_module():
    sys.path.insert(0, str(REPO_ROOT))
    import tasks

    return tasks


def test_missing_system_packages_say_the_exact_command_when_not_root() -> None:
    tasks = _tasks_module()
    needs = (
        ("unixODBC", lambda: False, ("unixodbc", "tdsodbc")),
        ("node", lambda: True, ("nodejs", "npm")),
    )
    with pytest.raises(tasks.TaskError) as caught:
        tasks.ensure_system_packages(needs, root=False)
    assert caught.value.code == tasks.EXIT_MISSING
    assert "sudo apt-get install -y --no-install-recommends unixodbc tdsodbc" in str(caught.value)
    assert "nodejs" not in str(caught.value)
    assert tasks.ensure_system_packages(needs[1:], root=False) == []


def test_missing_system_packages_are_installed_when_root(monkeypatch) -> None:
    tasks = _tasks_module()
    installed: set[str] = set()
    commands: list[list[str]] = []

    def fake_run(cmd, **kwargs):  # apt-get itself is not run by the tests
        commands.append([str(c) for c in cmd])
        if cmd[:2] == ["apt-get", "install"]:
            installed.update(
                c for c in cmd if not c.startswith("-") and c not in ("apt-get", "install")
            )
        return 0

    monkeypatch.setattr(tasks, "run", fake_run)
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}")
    needs = (("unixODBC", lambda: "unixodbc" in installed, ("unixodbc", "tdsodbc")),)
    assert tasks.ensure_system_packages(needs, root=True) == ["unixodbc", "tdsodbc"]
    assert commands[0] == ["apt-get", "update", "-qq"]
    assert commands[1][:2] == ["apt-get", "install"] and "-y" in commands[1]
    # a package that apt-get could not provide is reported, not ignored
    never = (("odd", lambda: False, ("odd-package",)),)
    with pytest.raises(tasks.TaskError, match="still missing after apt-get install: odd"):
        tasks.ensure_system_packages(never, root=True)


def test_the_system_needs_hold_what_ci_needs() -> None:
    tasks = _tasks_module()
    packages = {p for _, _, group in tasks.SYSTEM_NEEDS for p in group}
    assert packages == {
        "unixodbc",
        "tdsodbc",
        "nodejs",
        "npm",
        "python3-venv",
        "chromium",
    }
    assert all(present() for _, present, _ in tasks.SYSTEM_NEEDS)  # this machine has them
