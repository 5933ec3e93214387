"""REST API sources against a real HTTP server on 127.0.0.1 (tests/rest_server.py).

Every run goes through the same path as production: config workbook -> `plan` -> `run_tasks`
(-> `run_job`) -> Parquet in the lake, with state restored from the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from ingest.config import JobConfig
from ingest.configuration import load_config
from ingest.errors import ConfigError, JobError
from ingest.plan import plan
from ingest.settings import Settings
from ingest.sources.rest import check_base_url
from tests.conftest import read_lake_table, set_source_env
from tests.fixtures.audit import write_audit_json
from tests.fixtures.jobs import run_tasks_json
from tests.fixtures.rest import JOBS_HEADER, api_row, job_row, run, write_workbook
from tests.rest_server import STYLES, ApiServer, Auth

#: auth used with each style (every auth kind is exercised): server side, api sheet, secrets
STYLE_AUTH: dict[str, tuple[Auth, dict[str, Any], dict[str, str]]] = {
    "json_link": (Auth("bearer", "tok-json-7788"), {"auth": "bearer"}, {"token": "tok-json-7788"}),
    "header_link": (
        Auth("api_key_header", "key-hdr-5566", name="X-API-Key"),
        {"auth": "api_key", "api_key_name": "X-API-Key", "api_key_location": "header"},
        {"api_key": "key-hdr-5566"},
    ),
    "offset": (
        Auth("api_key_query", "key-qry-3344", name="access_code"),
        {"auth": "api_key", "api_key_name": "access_code", "api_key_location": "query"},
        {"api_key": "key-qry-3344"},
    ),
    "page_number": (
        Auth("basic", "pw-basic-2211", username="ingest"),
        {"auth": "basic"},
        {"username": "ingest", "password": "pw-basic-2211"},
    ),
    "cursor": (Auth("bearer", "tok-cur-9900"), {"auth": "bearer"}, {"token": "tok-cur-9900"}),
    "single_page": (Auth("none"), {}, {}),
}


def wipe_work_dir() -> None:
    work = Settings.from_env().work_dir
    shutil.rmtree(work, ignore_errors=True)
    assert not work.exists()


def lake_rows(destination: str, source: str, table: str = "items") -> list[dict[str, Any]]:
    data = read_lake_table(destination, source, table)
    return [] if data is None else data.to_pylist()


def as_served(row: dict[str, Any]) -> tuple:
    """A lake row in the server's JSON terms, for a row-for-row comparison."""
    stamp = row["updated_at"]
    assert isinstance(stamp, dt.datetime) and stamp.tzinfo is not None
    return (
        row["id"],
        row["name"],
        stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        row["amount"],
        json.loads(row["meta"]),  # nested objects stay in the row as JSON (no child tables)
    )


def served(record: dict[str, Any]) -> tuple:
    return (record["id"], record["name"], record["updated_at"], record["amount"], record["meta"])


# ------------------------------------------------------------------------------------------
# paginators, auth, incremental


@pytest.mark.parametrize("style", STYLES)
def test_full_then_incremental_in_every_pagination_style(style, tmp_path, monkeypatch, file_lake):
    server_auth, sheet_auth, secrets = STYLE_AUTH[style]
    with ApiServer(3000, server_auth) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url, **secrets)
        config = write_workbook(
            tmp_path / "ingest.xlsx", [job_row("001", "crm")], [api_row("001", style, **sheet_auth)]
        )
        path = f"/v1/{style}/items"

        (first,) = run(config, file_lake)
        assert first["status"] == "SUCCESS", first["error"]
        assert first["rows_loaded"] == 3000
        first_hits = api.hits(path)
        assert all(h.status == 200 for h in first_hits)
        assert "since" not in first_hits[0].query  # no state, no initial value: full load
        if style != "single_page":
            assert len(first_hits) >= 30  # really paginated
        rows = sorted(lake_rows(file_lake, "crm"), key=lambda r: r["id"])
        assert [as_served(r) for r in rows] == [served(r) for r in api.records]

        new = api.add_records(250)
        api.clear_hits()
        wipe_work_dir()  # a fresh worker: the watermark must come from the lake
        (second,) = run(config, file_lake)
        assert second["status"] == "SUCCESS", second["error"]
        assert (
            second["watermark_before"]
            == first["watermark_after"]
            == api.records[2999]["updated_at"]
        )
        # the cursor's last value went to the API as `since` (records at that second included)
        assert api.hits(path)[0].query["since"] == first["watermark_after"]
        assert second["rows_loaded"] == 250
        assert second["watermark_after"] == new[-1]["updated_at"]

        rows = lake_rows(file_lake, "crm")
        landed = sorted(
            (r for r in rows if r["_dlt_load_id"] == second["load_id"]), key=lambda r: r["id"]
        )
        assert [as_served(r) for r in landed] == [served(r) for r in new]  # exactly the new
        everything = sorted(rows, key=lambda r: r["id"])
        assert [as_served(r) for r in everything] == [served(r) for r in api.records]


def test_initial_watermark_is_sent_and_honoured(tmp_path, monkeypatch, file_lake):
    with ApiServer(600) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        start = api.records[299]["updated_at"]  # ids 300..302 share this second
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm", initial_watermark=start)],
            [api_row("001", "offset")],
        )
        (result,) = run(config, file_lake)
        assert result["status"] == "SUCCESS", result["error"]
        assert api.hits()[0].query["since"] == start
        ids = sorted(r["id"] for r in lake_rows(file_lake, "crm"))
        assert ids == [r["id"] for r in api.records if r["updated_at"] >= start]
        assert ids[:3] == [300, 301, 302] and len(ids) == 301


def test_full_load_job_reads_everything_without_cursor(tmp_path, monkeypatch, file_lake):
    with ApiServer(450) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm", load_type="FULL", watermark_column=None)],
            [api_row("001", "cursor", incremental_param=None)],
        )
        (first,) = run(config, file_lake)
        (second,) = run(config, file_lake)
        assert first["status"] == second["status"] == "SUCCESS"
        assert first["rows_loaded"] == second["rows_loaded"] == 450
        assert all("since" not in h.query for h in api.hits())


# ------------------------------------------------------------------------------------------
# HTTP errors


def test_429_and_503_are_retried_honouring_retry_after(tmp_path, monkeypatch, file_lake):
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    with ApiServer(500) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        api.state.fail_next = [(429, {"Retry-After": "2"}), (503, {})]
        config = write_workbook(
            tmp_path / "ingest.xlsx", [job_row("001", "crm")], [api_row("001", "offset")]
        )
        (result,) = run(config, file_lake)
        assert result["status"] == "SUCCESS", result["error"]
        assert result["rows_loaded"] == 500
        hits = api.hits()
        assert [h.status for h in hits[:3]] == [429, 503, 200]
        assert hits[0].query == hits[1].query == hits[2].query  # the same page, again
        assert hits[1].at - hits[0].at >= 1.9  # waited as long as Retry-After said
        assert len(lake_rows(file_lake, "crm")) == 500


def test_server_errors_that_persist_fail_retriably_after_bounded_attempts(
    tmp_path, monkeypatch, file_lake
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    with ApiServer(50) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        api.state.fail_always = 503
        config = write_workbook(
            tmp_path / "ingest.xlsx", [job_row("001", "crm")], [api_row("001", "json_link")]
        )
        (result,) = run(config, file_lake)
        assert result["status"] == "FAILED"
        assert result["retriable"] is True
        assert "HTTP 503" in result["error"] and "/v1/json_link/items" in result["error"]
        assert len(api.hits()) == 3


@pytest.mark.parametrize("status", [403, 404])
def test_forbidden_and_not_found_fail_at_once(status, tmp_path, monkeypatch, file_lake):
    with ApiServer(50) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        api.state.fail_always = status
        config = write_workbook(
            tmp_path / "ingest.xlsx", [job_row("001", "crm")], [api_row("001", "cursor")]
        )
        (result,) = run(config, file_lake)
        assert result["status"] == "FAILED" and result["retriable"] is False
        assert f"HTTP {status}" in result["error"] and "GET /v1/cursor/items" in result["error"]
        assert len(api.hits()) == 1  # not retried


@pytest.mark.parametrize("kind", ["bearer", "api_key_query"])
def test_401_fails_only_that_job_and_the_secret_never_leaks(
    kind, tmp_path, monkeypatch, file_lake, caplog
):
    good, bad = "good-secret-4711", "bad-secret-0815"
    if kind == "bearer":
        server_auth, sheet_auth = Auth("bearer", good), {"auth": "bearer"}
        secret_key = "token"
    else:
        server_auth = Auth("api_key_query", good, name="access_code")
        sheet_auth = {"auth": "api_key", "api_key_name": "access_code", "api_key_location": "query"}
        secret_key = "api_key"
    caplog.set_level(logging.DEBUG)
    with ApiServer(400, server_auth) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url, **{secret_key: good})
        set_source_env(monkeypatch, "crm_bad", base_url=api.base_url, **{secret_key: bad})
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm"), job_row("002", "crm_bad")],
            [api_row("001", "offset", **sheet_auth), api_row("002", "offset", **sheet_auth)],
        )
        planned = plan(config, destination=file_lake)
        results = run_tasks_json(planned.tasks, Settings.from_env())
        by_id = {r["job_id"]: r for r in results}
        assert by_id["001"]["status"] == "SUCCESS" and by_id["001"]["rows_loaded"] == 400
        failed = by_id["002"]
        assert failed["status"] == "FAILED" and failed["retriable"] is False
        assert "HTTP 401" in failed["error"] and "GET /v1/offset/items" in failed["error"]
        assert "crm_bad" in failed["error"]
        assert [h.status for h in api.hits() if h.status == 401] == [401]  # no retry
        summary = write_audit_json(
            {"run_id": planned.run_id, "destination": file_lake, "results": results}
        )
    audit_text = Path(summary["audit_path"]).read_text(encoding="utf-8")  # a file:// lake
    assert "bad-secret" not in audit_text and "FAILED" in audit_text
    everything = caplog.text + audit_text + json.dumps(results)
    assert caplog.text  # the run did log (at DEBUG)
    for secret in (good, bad):
        assert secret not in everything
    assert "access_code=" not in caplog.text.replace("access_code=***", "")


@pytest.mark.parametrize("fault", ["paginator", "http_400"])
def test_an_api_echoing_the_url_never_leaks_the_key_in_any_encoding(
    fault, tmp_path, monkeypatch, file_lake, capsys
):
    """The issue's leak: an api_key sent as a query parameter, with `+`, `/`, `=` and a space,
    comes back %-encoded in the API's body; a paginator error quoted the body. The job's error
    names status, method and path only; stderr (the CLI's log) and the audit hold no form of
    the key."""
    from urllib.parse import quote, quote_plus

    from ingest.cli import main

    key = "k+y/with=sign s€cret"
    server_auth = Auth("api_key_query", key, name="access_code")
    sheet_auth = {"auth": "api_key", "api_key_name": "access_code", "api_key_location": "query"}
    # paginator: `count` is not in the body, so dlt's paginator error quotes the whole body
    broken = {"total_path": "count"} if fault == "paginator" else {}
    with ApiServer(50, server_auth) as api:
        api.state.echo_request = True
        if fault == "http_400":
            api.state.fail_always = 400
        set_source_env(monkeypatch, "crm", base_url=api.base_url, api_key=key)
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm")],
            [api_row("001", "offset", **sheet_auth, **broken)],
        )
        code = main(["-v", "run", "--config", config, "--destination", file_lake, "--json"])
        first = api.hits()[0]
        assert first.query["access_code"] == key  # the key did go out in the query string
        assert first.status == (200 if fault == "paginator" else 400)
    captured = capsys.readouterr()
    assert code == 1
    result = json.loads(captured.out)["results"][0]
    assert result["status"] == "FAILED"
    if fault == "paginator":
        assert "source 'crm': GET /v1/offset/items (HTTP 200) could not be read" in result["error"]
        assert "ValueError: Total `items` not found in the response" in result["error"]
    else:
        assert "HTTP 400" in result["error"] and "GET /v1/offset/items" in result["error"]
    assert "request" not in result["error"] and "access_code" not in result["error"]
    audit = next(Path(file_lake.removeprefix("file://"), "metadata").glob("audit_*.csv"))
    everything = captured.err + captured.out + audit.read_text(encoding="utf-8")
    assert "GET /v1/offset/items" in captured.err  # the log did report the failure
    for form in (key, quote_plus(key), quote(key, safe=""), quote(key), json.dumps(key)[1:-1]):
        assert form not in everything, form
    assert "s€cret" not in everything and "s%E2%82%ACcret" not in everything


def test_next_page_link_to_another_host_is_refused(tmp_path, monkeypatch, file_lake):
    with ApiServer(300, Auth("bearer", "tok-host-1234")) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url, token="tok-host-1234")
        api.state.link_host = f"localhost:{api.port}"  # same machine, different host name
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm")],
            [api_row("001", "json_link", auth="bearer")],
        )
        (result,) = run(config, file_lake)
        assert result["status"] == "FAILED"
        assert "not on the base_url's host" in result["error"]
        assert len(api.hits()) == 1  # the link was never followed


# ------------------------------------------------------------------------------------------
# base URL rules


def test_http_base_url_to_a_remote_host_is_rejected(tmp_path, monkeypatch, file_lake):
    set_source_env(monkeypatch, "crm", base_url="http://api.example.com/", token="tok-abc-123")
    config = write_workbook(
        tmp_path / "ingest.xlsx",
        [job_row("001", "crm")],
        [api_row("001", "offset", auth="bearer")],
    )
    (result,) = run(config, file_lake)
    assert result["status"] == "FAILED" and result["retriable"] is False
    assert "source 'crm'" in result["error"] and "https://" in result["error"]
    assert "tok-abc-123" not in result["error"]


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://api.example.com/v1", True),
        ("http://localhost:8080/", True),
        ("http://127.0.0.1:9000/api", True),
        ("http://[::1]:9000/", True),
        ("http://api.example.com/v1", False),
        ("http://10.0.0.5/", False),
        ("ftp://api.example.com/", False),
        ("https://user:pw@api.example.com/", False),
        ("https://api.example.com/v1?key=abc", False),
        ("api.example.com", False),
    ],
)
def test_base_url_rules(url, ok):
    if ok:
        assert check_base_url("crm", url) == url
    else:
        with pytest.raises(JobError, match="source 'crm'") as info:
            check_base_url("crm", url)
        assert "pw" not in str(info.value) and "abc" not in str(info.value)


# ------------------------------------------------------------------------------------------
# the api sheet


def test_api_sheet_problems_are_reported_together_with_row_and_column(tmp_path):
    jobs = [
        job_row("001", "crm_a"),
        job_row("002", "crm_b"),
        job_row("003", "crm_c", load_type="FULL", watermark_column=None),
        job_row("004", "crm_d"),  # no api row
        job_row("005", "crm_e", load_type="SOMETIMES"),  # a jobs-sheet problem
        ["006", "Y", "postgresql", "pg", "orders", "FULL", None, None, None],
        job_row("007", "crm_g"),
    ]
    api = [
        api_row("001", "offset", paginator="endless", limit=None),  # row 2
        api_row("002", "offset", limit=None, params="{not json"),  # row 3
        api_row("003", "cursor", cursor_path=None),  # row 4: incremental_param on FULL
        api_row("099", "json_link"),  # row 5: unknown job
        api_row("006", "json_link"),  # row 6: not a rest job
        api_row("007", "json_link", auth="api_key", page_param="page"),  # row 7
        api_row("007", "json_link"),  # row 8: duplicate
        api_row(
            "001", "single_page", endpoint="https://evil.example.com/items", method="DELETE"
        ),  # row 9: duplicate of 001 (reported), its other values not checked
    ]
    path = write_workbook(tmp_path / "bad.xlsx", jobs, api)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = {(p.sheet, p.row, p.column) for p in info.value.problems}
    expected = {
        ("api", 2, "paginator"),
        ("api", 3, "limit"),
        ("api", 3, "params"),
        ("api", 4, "incremental_param"),
        ("api", 4, "cursor_path"),
        ("api", 5, "job_id"),
        ("api", 6, "job_id"),
        ("api", 7, "api_key_name"),
        ("api", 7, "page_param"),
        ("api", 8, "job_id"),
        ("api", 9, "job_id"),
        ("jobs", 5, "job_id"),  # 004 has no api row
        ("jobs", 6, "load_type"),
    }
    assert expected <= found, sorted(found - expected)
    text = str(info.value)
    assert "sheet 'api', row 2, column 'paginator'" in text
    assert "'endless' is not one of" in text
    assert "has no row on the 'api' sheet" in text


@pytest.mark.parametrize(
    "values, column, message",
    [
        ({"endpoint": "https://x.example.com/items"}, "endpoint", "relative to"),
        ({"endpoint": "items?status=open"}, "endpoint", "no query string"),
        ({"endpoint": None}, "endpoint", "required"),
        ({"method": "DELETE"}, "method", "not one of"),
        ({"params": "[1, 2]"}, "params", "JSON object"),
        ({"params": '{"since": "x"}'}, "incremental_param", "also set in params"),
        ({"params": '{"q": "{secret}"}'}, "params", "placeholders"),
        ({"data_selector": "items[?"}, "data_selector", "JSONPath"),
        ({"limit": "0"}, "limit", "whole number"),
        ({"total_path": "$$$["}, "total_path", "JSONPath"),
        ({"next_url_path": "next"}, "next_url_path", "does not apply"),
        ({"auth": "oauth"}, "auth", "not one of"),
        ({"auth": "bearer", "api_key_location": "query"}, "api_key_location", "only to auth"),
        (
            {"auth": "api_key", "api_key_name": "k", "api_key_location": "cookie"},
            "api_key_location",
            "not one of",
        ),
        ({"paginator": None}, "paginator", "required"),
        ({"primary_key": "uid"}, "primary_key", "differs"),
        ({"incremental_param": "since date"}, "incremental_param", "plain parameter"),
    ],
)
def test_each_api_column_is_validated(values, column, message, tmp_path):
    path = write_workbook(
        tmp_path / "bad.xlsx", [job_row("001", "crm")], [api_row("001", "offset", **values)]
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = [p for p in info.value.problems if p.column == column]
    assert problems, str(info.value)
    assert problems[0].sheet == "api" and problems[0].row == 2
    assert message in problems[0].message


def test_valid_api_sheet_travels_in_the_job_and_round_trips(tmp_path):
    path = write_workbook(
        tmp_path / "ok.xlsx",
        [job_row("001", "crm")],
        [api_row("001", "offset", params='{"status": "open", "per": 3}', auth="bearer")],
    )
    config = load_config(path)
    (job,) = config.jobs
    assert job.rest["path"] == "v1/offset/items"
    assert job.rest["params"] == {"status": "open", "per": 3}
    assert job.rest["paginator"] == {
        "type": "offset",
        "limit": 100,
        "offset_param": "offset",
        "limit_param": "limit",
        "total_path": "total",
    }
    assert job.rest["auth"] == {"type": "bearer"}
    assert job.rest["incremental_param"] == "since"
    assert job.rest["primary_key"] == ["id"]
    assert job.rest["origin"] == "sheet 'api' row 2"
    again = JobConfig.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job
    hash(again)  # still usable in sets / as a key
    assert not config.warnings


def test_earlier_tools_api_sheet_and_columns_load(tmp_path):
    """`SourceConfig` + `API` sheets as the earlier tool wrote them; `api_endpoint`,
    `api_method`, `pagination_type` are honoured, not reported as ignored."""
    header = [
        "Job_ID",
        "Enabled",
        "Source_Type",
        "Source_Name",
        "Table_Name",
        "Load_Type",
        "API_Endpoint",
        "API_Method",
        "Pagination_Type",
    ]
    jobs = [
        [1, "Y", "API", "tickets", "tickets", "Full", "v2/tickets", "get", "none"],
        [2, "Y", "API", "hr", "people", "Full", None, None, None],
        [3, "Y", "PostgreSQL", "erp", "orders", "Full", None, None, None],
    ]
    api = [[2, "v1/people", "GET", "page", "data"]]
    path = write_workbook(
        tmp_path / "legacy.xlsx",
        jobs,
        api,
        jobs_header=header,
        api_header=["Job_ID", "API_Endpoint", "API_Method", "Pagination_Type", "Data_Selector"],
        jobs_sheet="SourceConfig",
        api_sheet="API",
    )
    config = load_config(path)
    jobs_by_id = {j.job_id: j for j in config.jobs}
    assert jobs_by_id["1"].source_type == "rest_api"
    assert jobs_by_id["1"].rest["path"] == "v2/tickets"
    assert jobs_by_id["1"].rest["method"] == "GET"
    assert jobs_by_id["1"].rest["paginator"] == {"type": "single_page"}
    assert jobs_by_id["2"].rest["path"] == "v1/people"
    assert jobs_by_id["2"].rest["paginator"] == {"type": "page_number"}
    assert jobs_by_id["2"].rest["data_selector"] == "data"
    assert jobs_by_id["3"].rest is None
    assert not any("api_endpoint" in w or "pagination_type" in w for w in config.warnings)


def test_legacy_columns_problems_point_at_the_jobs_sheet(tmp_path):
    header = [*JOBS_HEADER, "api_endpoint", "pagination_type"]
    path = write_workbook(
        tmp_path / "legacy.xlsx",
        [job_row("001", "crm", load_type="FULL", watermark_column=None) + ["v1/x", "scroll"]],
        jobs_header=header,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert (problem.sheet, problem.row, problem.column) == ("jobs", 2, "pagination_type")


def test_csv_config_reads_its_sibling_api_csv(tmp_path, monkeypatch, file_lake):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        ",".join(JOBS_HEADER) + "\n001,Y,rest_api,crm,items,INCREMENTAL,updated_at,id,\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="has no row on the 'api' sheet"):
        load_config(jobs)
    (tmp_path / "jobs.api.csv").write_text(
        "job_id,endpoint,data_selector,paginator,limit,incremental_param\n"
        "001,v1/offset/items,items,offset,50,since\n",
        encoding="utf-8",
    )
    with ApiServer(120) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        (result,) = run(str(jobs), file_lake)
        assert result["status"] == "SUCCESS", result["error"]
        assert result["rows_loaded"] == 120
    (tmp_path / "jobs.api.csv").write_text(
        "job_id,endpoint,paginator\n001,v1/offset/items,offset\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(jobs)
    (problem,) = info.value.problems
    assert (problem.sheet, problem.row, problem.column) == ("jobs.api.csv", 2, "limit")


def test_check_connection_reports_bad_credentials(monkeypatch, tmp_path):
    from ingest.secrets.resolver import Secret
    from ingest.sources import get_builder

    with ApiServer(10, Auth("bearer", "right-token-1")) as api:
        path = write_workbook(
            tmp_path / "ok.xlsx",
            [job_row("001", "crm")],
            [api_row("001", "offset", auth="bearer")],
        )
        (job,) = load_config(path).jobs
        builder = get_builder("rest_api")
        builder.check_connection(
            job, {"base_url": Secret(api.base_url), "token": Secret("right-token-1")}
        )
        with pytest.raises(JobError, match="HTTP 401") as info:
            builder.check_connection(
                job, {"base_url": Secret(api.base_url), "token": Secret("wrong-token-2")}
            )
        assert "wrong-token-2" not in str(info.value)
        with pytest.raises(JobError, match="no 'token' secret"):
            builder.check_connection(job, {"base_url": Secret(api.base_url)})


def test_incremental_without_cursor_parameter_is_a_warning_and_filters_locally(
    tmp_path, monkeypatch, file_lake
):
    with ApiServer(300) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        path = write_workbook(
            tmp_path / "ok.xlsx",
            [job_row("001", "crm")],
            [api_row("001", "offset", incremental_param=None)],
        )
        assert any("without incremental_param" in w for w in load_config(path).warnings)
        (first,) = run(path, file_lake)
        new = api.add_records(40)
        (second,) = run(path, file_lake)
        assert first["rows_loaded"] == 300 and second["rows_loaded"] == 40
        assert all("since" not in h.query for h in api.hits())
        landed = [
            r["id"] for r in lake_rows(file_lake, "crm") if r["_dlt_load_id"] == second["load_id"]
        ]
        assert sorted(landed) == [r["id"] for r in new]
