"""The lake's path is one path: every writer and reader (dlt's files, leases and commit logs, the
audit, views, the clean-up of dead loads, `query`) uses the same folder or blob prefix, whatever
characters it holds: spaces, %, #, + and non-ASCII letters, on a local lake and on Azurite.

Real `python -m ingest` processes: a run, a run killed right after its commit (before dlt wrote
its state and completion marker), a run that must clean that up and load every row once, the
views and a query through them.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest

from ingest.lake.destination import Destination
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, source_rows
from tests.fixtures.processes import (
    INCREMENTAL_ROW,
    Process,
    audit_rows,
    base_env,
    completed_ids,
    wait_for_file,
    write_config,
)

#: a lake folder name with what URLs and shells treat specially
NAME = "My Lake %41 #1 +x é"


@pytest.fixture(params=["file", "azurite"])
def odd_lake(request, tmp_path: Path) -> str:
    if request.param == "file":
        folder = tmp_path / "lakes" / NAME
        folder.mkdir(parents=True)
        return str(folder)  # a plain path: taken literally
    container = request.getfixturevalue("azure_lake")
    return f"{container}/{NAME}"


def _listing(lake: str) -> list[str]:
    """Every file under the lake's container or parent folder, relative to it."""
    dest = Destination.from_url(lake)
    if dest.protocol == "file":
        parent = Path(dest.root).parent
        return sorted(str(p.relative_to(parent)) for p in parent.rglob("*") if p.is_file())
    return sorted(b.name for b in dest.container_client().list_blobs())


def test_one_path_for_every_writer_and_reader(pg, odd_lake, monkeypatch, tmp_path):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    args = ["run", "--config", config, "--destination", odd_lake]
    # the shortest lease (15 s): the rerun takes over the killed writer's lease once it expired
    env = base_env(INGEST_LEASE_PERIOD_S="15")

    first = Process([*args, "--run-id", "night-1"], env)
    assert first.finish() == 0, first.stderr

    # the next load dies right after its commit, before its state file and completion marker
    insert_orders(pg, 1001, 2000, updated_at="2024-06-01T00:00:00+00")
    pause = tmp_path / "pause"
    pause.mkdir()
    doomed = Process(
        [*args, "--run-id", "night-2"],
        base_env(INGEST_TEST_PAUSE_AT="commit", INGEST_LEASE_PERIOD_S="15"),
        pause_dir=pause,
    )
    wait_for_file(pause / "commit", doomed)
    doomed.popen.send_signal(signal.SIGKILL)
    assert doomed.finish() == -signal.SIGKILL

    again = Process([*args, "--run-id", "night-2-again"], env)
    assert again.finish() == 0, again.stderr
    assert "never committed" in again.stderr  # the dead load was found and removed
    landed = completed_ids(odd_lake)
    assert sorted(landed) == [row[0] for row in source_rows(pg)]
    assert set(landed.values()) == {1}

    # every file of ours and of dlt's is under the one lake folder, none under an encoded twin
    files = _listing(odd_lake)
    assert files and all(f.startswith(NAME + "/") for f in files), files[:5]
    for part in ("metadata/leases/", "metadata/audit_", "metadata/views/duckdb/", "_dlt_loads/"):
        assert any(part in f for f in files), part
    assert {row["run_id"] for row in audit_rows(odd_lake)} >= {"night-1", "night-2-again"}

    query = Process(
        ["query", "--destination", odd_lake, "--json", "select count(*) as n from pg_erp.orders"],
        env,
    )
    code = query.finish()
    if code == 0 and query.stdout.strip().startswith("{"):  # --json where the CLI has it
        assert json.loads(query.stdout)["rows"] == [[2000]]
    else:
        plain = Process(
            ["query", "--destination", odd_lake, "select count(*) as n from pg_erp.orders"], env
        )
        assert plain.finish() == 0, plain.stderr
        assert "2000" in plain.stdout, plain.stdout


def test_lake_urls_keep_the_same_path_in_every_form(tmp_path):
    """A local folder named as a path or as a file:// URL, and a blob prefix with the same
    characters, are one lake each (the URL's percent-escapes decoded once, paths literal)."""
    folder = tmp_path / NAME
    as_path = Destination.from_url(str(folder))
    as_url = Destination.from_url(folder.as_uri())
    assert as_path.root == as_url.root == str(folder)
    assert as_path.path("metadata", "x") == f"{folder}/metadata/x"
    container = f"c{uuid.uuid4().hex[:8]}"
    blob = Destination.from_url(
        f"az://{container}/{NAME}",
        env={"AZURE_STORAGE_ACCOUNT_NAME": "acct"},
    )
    assert blob.root == f"{container}/{NAME}"
    encoded = Destination.from_url(
        f"abfss://{container}@acct.dfs.core.windows.net/My%20Lake%20%2541%20%231%20+x%20%C3%A9",
        env={},
    )
    assert encoded.root == blob.root
