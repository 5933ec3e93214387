"""The optional extras (pyproject.toml): `fast` (connectorx) and `delta` (deltalake).

Both are installed in the test venv (requirements-dev.txt has every extra), so the fast path
and Delta tests run for real elsewhere; here each package is hidden the way an uninstalled one
looks to `import` (`sys.modules[name] = None`) and the real job and CLI code must degrade with
a clear message.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path

import pytest

from ingest.cli import main as cli_main
from ingest.config import JobConfig
from ingest.runtime import optional
from tests.conftest import lake_files, read_lake_table
from tests.fixtures.jobs import run_task
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, job
from tests.fixtures.sheet import sheet_header

ROOT = Path(__file__).resolve().parents[2]


def test_both_extras_are_installed_here_so_the_suite_runs_them() -> None:
    assert optional.installed("connectorx")
    assert optional.installed("deltalake")


def test_extras_declared_in_pyproject_match_the_code() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == set(optional.EXTRAS)
    for extra, (module, _) in optional.EXTRAS.items():
        assert [r.split("==")[0] for r in extras[extra]] == [module]
    assert not any(r.startswith(("connectorx", "deltalake")) for r in project["dependencies"])


def test_hidden_package_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "connectorx", None)
    assert not optional.installed("connectorx")
    assert not optional.installed("no_such_module_here")


def test_postgres_without_connectorx_falls_back_to_pyarrow(
    pg, file_lake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "connectorx", None)  # `import connectorx` now fails
    optional._log_fast_path_missing.cache_clear()
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 300)
    pg.use_as(monkeypatch, SOURCE)
    config = job(pg, load_type="FULL")
    with caplog.at_level(logging.WARNING, logger="ingest.runtime.optional"):
        result = run_task({"run_id": "r1", "job": config.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]
    assert "connectorx is not installed" in caplog.text
    assert "dlt-ingest[fast]" in caplog.text
    landed = read_lake_table(file_lake, SOURCE, "orders")
    data = [c for c in landed.column_names if not c.startswith("_dlt")]
    rows = sorted(tuple(r.values()) for r in landed.select(data).to_pylist())
    assert rows == pg.query("SELECT * FROM orders ORDER BY 1")


def test_delta_job_without_deltalake_fails_naming_the_extra(
    pg, file_lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 50)
    pg.use_as(monkeypatch, SOURCE)
    config = job(pg, table_format="delta")
    result = run_task({"run_id": "r1", "job": config.to_dict(), "destination": file_lake})
    assert result["status"] == "FAILED"
    assert "table_format = delta" in result["error"]
    assert "deltalake is not installed" in result["error"]
    assert "dlt-ingest[delta]" in result["error"]
    assert "--deploy-extras fast,delta" in result["error"]
    assert result["retriable"] is False
    assert lake_files(file_lake, SOURCE, "orders") == []


def test_validate_reports_missing_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "jobs.csv"
    rows = [
        JobConfig("d1", True, "sqlite", "shop", "orders", "FULL", table_format="delta"),
        JobConfig("p1", True, "postgresql", "erp", "items", "FULL"),
    ]
    header = (
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "table_format",
        )
        + "\n"
    )
    body = "".join(
        f"{j.job_id},Y,{j.source_type},{j.source_name},{j.table_name},FULL,{j.table_format}\n"
        for j in rows
    )
    config.write_text(header + body)
    assert cli_main(["validate", "--config", str(config)]) == 0
    monkeypatch.setitem(sys.modules, "deltalake", None)
    monkeypatch.setitem(sys.modules, "connectorx", None)
    code = cli_main(["validate", "--config", str(config)])
    out = capsys.readouterr()
    assert code == 1
    assert "error: job d1 has table_format = delta" in out.out
    assert "PostgreSQL job(s) p1 will use dlt's pyarrow backend" in out.err
