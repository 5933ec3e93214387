"""Exactly once across crashes: a real `python -m ingest run` killed (-9) at points between
reading the changes, committing the load and confirming the slot (tests/pause_hook), then run
again. After the rerun, every change is in the lake once: the current view equals the source,
and the history holds each version once (the first copy's rows, then every change)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ingest.cli import main
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, view
from tests.fixtures.processes import Process, audit_rows, wait_for_file

#: the pause points: extracted and first file written (read, not committed); the commit in
#: the table's log written (not yet marked complete); the load complete (slot not confirmed)
POINTS = ("first_file", "commit", "committed")


def changes(source) -> int:
    """Changes made: 20 inserts, 30 updates, 10 deletes (60 history rows)."""
    source.execute(
        "INSERT INTO items SELECT x, 'late ' || x, x, now(), NULL FROM generate_series(301, 320) x"
    )
    source.execute("UPDATE items SET name = 'changed ' || id WHERE id BETWEEN 1 AND 30")
    source.execute("DELETE FROM items WHERE id BETWEEN 31 AND 40")
    return 60


def history_once(lake: str, expected: int) -> None:
    rows = view(lake, f"SELECT id, _lsn, _deleted FROM {SOURCE}.items_history")
    twice = [k for k, n in Counter(rows).items() if n > 1]
    assert twice == [], f"versions landed twice: {twice[:5]}"
    assert len(rows) == expected


def killed_at(point: str, path: str, lake: str, tmp_path: Path, run_id: str) -> None:
    pause = tmp_path / f"pause-{run_id}"
    pause.mkdir()
    # the shortest lease (15 s): the rerun takes the killed run's lease over once it expired
    env = {**os.environ, "INGEST_TEST_PAUSE_AT": point, "INGEST_LEASE_PERIOD_S": "15"}
    process = Process(
        ["run", "--config", path, "--destination", lake, "--run-id", run_id], env, pause
    )
    wait_for_file(pause / point, process)
    process.popen.kill()
    process.finish()


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("phase", ["first copy", "stream"])
def test_a_run_killed_anywhere_lands_every_change_once(
    source, file_lake, tmp_path, monkeypatch, point, phase
):
    killed_and_rerun(source, file_lake, tmp_path, monkeypatch, point, phase)


@pytest.mark.parametrize("point", ["commit", "committed"])
def test_on_azurite_a_run_killed_after_its_commit_lands_every_change_once(
    source, azure_lake, tmp_path, monkeypatch, point
):
    killed_and_rerun(source, azure_lake, tmp_path, monkeypatch, point, "stream")


def killed_and_rerun(source, file_lake, tmp_path, monkeypatch, point, phase) -> None:
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, "
        "timestamptz '2024-01-01 00:00+00' + x * interval '1 min', 'v' FROM "
        "generate_series(1, 200) x"
    )
    path = config(tmp_path)
    expected = 200
    if phase == "stream":
        assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r0"]) == 0
        expected += changes(source)
    killed_at(point, path, file_lake, tmp_path, "killed")
    if phase == "first copy":
        made = changes(source)
        # a copy that committed: the changes stream after it; one that did not: the next
        # run copies again, in a new snapshot that holds them (200 + 20 - 10 rows)
        expected = expected + made if point == "committed" else 210
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r1"]) == 0
    # one more run: what the slot sends again (not confirmed before the kill) lands nowhere
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r2"]) == 0
    equal_both_ways(source, file_lake)
    history_once(file_lake, expected)
    rerun = next(r for r in audit_rows(file_lake) if r["run_id"] == "r1")
    if phase == "stream" and point == "committed":
        # the killed run's load stands; the slot sent its changes again and they were dropped
        assert rerun["load_id"] == "" and rerun["rows_loaded"] == "0", rerun
    (confirmed,) = source.query(
        "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() - 1000000 FROM pg_replication_slots"
    )
    assert confirmed == (True,)
