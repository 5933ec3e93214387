"""The HTML run report: its numbers against the audit, the files every run writes, the
`report --html` command, and that a report failure never fails a run.

The page in a real browser: tests/reports/test_report_browser.py."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from pathlib import Path

import pytest

from ingest.audit import read_audit
from ingest.cli import main
from ingest.lake.destination import Destination
from ingest.reports import report_files, report_html, run_report
from tests.fixtures.run import COLUMNS, closed_port
from tests.reports.audit_factory import HOSTILE_ERROR, tables, write_nights

TODAY = dt.datetime.now(dt.UTC).date()


def audit_rows(lake: str, days: list[dt.date]) -> list[tuple[dt.date, dict[str, str]]]:
    dest = Destination.from_url(lake)
    return [(day, row) for day in days for row in read_audit(dest, day)]


@pytest.fixture
def history(file_lake: str) -> tuple[str, list[dt.date], list[str]]:
    """12 tables in 2 sources, one nightly run on each of the last 10 days."""
    days = run_report.window(10)
    run_ids = write_nights(file_lake, days, tables(12, per_source=6), seed=3)
    return file_lake, days, run_ids


def test_the_report_data_is_the_audit(history):
    lake, days, run_ids = history
    data = run_report.collect(lake, 10)
    rows = audit_rows(lake, days)
    assert data.loads == len(rows) == 120
    assert data.days == days and len(data.tables) == 12

    # the run: the latest by default, its counts and rows from its audit rows
    last = [row for _, row in rows if row["run_id"] == run_ids[-1]]
    assert data.run is not None and data.run.run_id == run_ids[-1]
    for status in ("SUCCESS", "WARN", "FAILED", "SKIPPED"):
        assert data.run.counts[status] == sum(1 for r in last if r["status"] == status), status
    assert data.run.rows_loaded == sum(int(r["rows_loaded"]) for r in last)
    assert data.run.started_at == min(r["started_at"] for r in last)
    assert data.run.duration_s == pytest.approx(
        (
            dt.datetime.fromisoformat(max(r["finished_at"] for r in last))
            - dt.datetime.fromisoformat(min(r["started_at"] for r in last))
        ).total_seconds()
    )
    # an earlier run on request
    first = run_report.collect(lake, 10, run_ids[0])
    assert first.run is not None and first.run.day == days[0]

    # grid, rows per day and source, lists
    for day, row in rows:
        assert data.cell_status(row["job_id"], day) == row["status"]
    per_day: dict[dt.date, int] = defaultdict(int)
    per_source: dict[str, int] = defaultdict(int)
    for day, row in rows:
        per_day[day] += int(row["rows_loaded"])
        per_source[row["source_name"]] += int(row["rows_loaded"])
    assert data.rows_per_day() == dict(per_day)
    assert set(data.sources()) == set(per_source)
    assert [m.row["job_id"] for m in data.mismatches] == [
        r["job_id"]
        for _, r in sorted(rows, key=lambda x: x[1]["started_at"], reverse=True)
        if r["reconciled"] == "MISMATCH"
    ]
    assert {p.status for p in data.problems} <= {"FAILED", "WARN"}
    assert len(data.problems) == sum(1 for _, r in rows if r["status"] in ("FAILED", "WARN"))
    assert data.extra_count_columns == []  # this audit has no delete / late-row columns


def test_a_day_with_two_runs_shows_the_latest_load(file_lake):
    day = TODAY
    write_nights(file_lake, [day], tables(2), seed=1)
    from tests.fixtures.audit import append_audit_json

    rerun = {
        "run_id": "manual-1",
        "job_id": "0001",
        "source_type": "postgresql",
        "source_name": "src_00",
        "table_name": "table_00",
        "load_type": "FULL",
        "status": "FAILED",
        "started_at": f"{day.isoformat()}T09:00:00+00:00",
        "finished_at": f"{day.isoformat()}T09:00:05+00:00",
        "duration_s": 5.0,
        "error": "second attempt broke",
    }
    append_audit_json(Destination.from_url(file_lake), [rerun], day)
    data = run_report.collect(file_lake, 1)
    assert data.cell_status("0001", day) == "FAILED"
    assert data.run is not None and data.run.run_id == "manual-1"  # the run that started last
    page = report_html.render(data)
    cell = re.search(r'<tr id="t0" data-job="0001">.*?</tr>', page, re.S)
    assert cell and "second attempt broke" in cell.group(0) and 'class="FAILED"' in cell.group(0)


def test_the_page_escapes_audit_text(history):
    lake, _, _ = history
    page = report_files.build_html(lake, 10)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Zürich, 東京" in page
    assert 'http-equiv="Content-Security-Policy"' in page
    # self-contained: nothing to fetch (the SVG namespaces are names, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # url(#id) is local


def test_delete_and_late_row_columns_appear_when_the_audit_has_them(file_lake):
    def counts(rng, status):
        return {
            "rows_deleted": rng.choice([0, 0, 2]),
            "late_rows": rng.choice([0, 5]),
            "late_note": "a note, not a count",
        }

    days = run_report.window(3)
    write_nights(file_lake, days, tables(6), seed=5, extra=counts)
    data = run_report.collect(file_lake, 3)
    assert data.extra_count_columns == ["late_rows", "rows_deleted"]
    rows = [r for _, r in audit_rows(file_lake, days)]
    expected = [r for r in rows if int(r["rows_deleted"]) or int(r["late_rows"])]
    assert len(data.extra_counts) == len(expected) > 0
    page = report_html.render(data)
    assert '<section id="counts"><h2>Deletes and late rows</h2>' in page
    # without such columns (the audit of today) the section is not there at all
    plain = report_html.render(run_report.collect(write_lake_without_counts(file_lake), 3))
    assert 'id="counts"' not in plain


def write_lake_without_counts(file_lake: str) -> str:
    other = Path(file_lake[len("file://") :]).parent / "plain-lake"
    other.mkdir()
    write_nights(other.as_uri(), run_report.window(3), tables(6), seed=5)
    return other.as_uri()


def test_write_report_stores_the_run_and_latest(history):
    lake, _, run_ids = history
    written = report_files.write_report(lake, run_ids[-1])
    folder = Path(lake[len("file://") :]) / "metadata" / "reports"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{run_ids[-1]}.html", "latest.html"]
    )
    page = (folder / f"{run_ids[-1]}.html").read_text()
    assert page == (folder / "latest.html").read_text() == written["page"]
    assert written["bytes"] == len(page.encode())
    assert report_files.read_report(lake, run_ids[-1]) == page
    assert report_files.read_report(lake, "latest") == page
    assert report_files.read_report(lake, "nightly-1999-01-01") is None
    # an older run's report on request: built, stored, and latest.html is left alone
    older = report_files.report_page(lake, run_ids[0])
    assert older is not None and run_ids[0] in older
    assert (folder / f"{run_ids[0]}.html").read_text() == older
    assert (folder / "latest.html").read_text() == page
    assert report_files.report_page(lake, "never-ran") is None
    with pytest.raises(LookupError):
        report_files.write_report(lake, "never-ran")


HOSTILE_IDS = [
    "",
    ".",
    "..",
    "../audit",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e",
    "a/../../b",
    "reports/latest",
    "/etc/passwd",
    "\\..\\secret",
    "a\\b",
    "run\x00.html",
    "run\n",
    "x" * 129,
    "ｒｕｎ",  # full-width letters
    "rün",
    "-leading-dash",
    "C:\\Windows",
    "~root",
    "run id",
]


@pytest.mark.parametrize("run_id", HOSTILE_IDS, ids=repr)
def test_no_id_names_a_file_outside_the_reports_folder(file_lake, run_id):
    dest = Destination.from_url(file_lake)
    with pytest.raises(report_files.BadReportId):
        report_files.report_path(dest, run_id)
    with pytest.raises(report_files.BadReportId):
        report_files.read_report(file_lake, run_id)


def test_a_symlinked_report_is_not_followed_out_of_the_folder(file_lake, tmp_path):
    folder = Path(file_lake[len("file://") :]) / "metadata" / "reports"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.html"
    secret.write_text("secret")
    (folder / "run-link.html").symlink_to(secret)
    with pytest.raises(report_files.BadReportId):
        report_files.read_report(file_lake, "run-link")


def test_a_report_failure_never_fails_the_run(history, caplog):
    lake, _, run_ids = history
    folder = Path(lake[len("file://") :]) / "metadata" / "reports"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the reports folder should be")
    outcome = report_files.report_after_run(lake, run_ids[-1])
    assert set(outcome) == {"error"} and "reports" in outcome["error"]
    assert "report not written" in caplog.text
    folder.unlink()
    missing = report_files.report_after_run(lake, "not-in-the-audit")
    assert "LookupError" in missing["error"]
    written = report_files.report_after_run(lake, run_ids[-1])
    assert written["path"].endswith(f"{run_ids[-1]}.html") and "page" not in written


# ------------------------------------------------------------------------------------------
# the command


def test_report_command_writes_the_page(history, tmp_path, capsys):
    lake, _, run_ids = history
    out = tmp_path / "out" / "report.html"
    code = main(["report", "--html", "--destination", lake, "--days", "10", "--out", str(out)])
    assert code == 0
    page = out.read_text()
    assert f"run {run_ids[-1]}" in capsys.readouterr().out
    assert run_ids[-1] in page and page.count('data-job="') == 12

    assert main(["report", "--html", "--destination", lake, "--run", run_ids[2], "--out", "-"]) == 0
    assert f"run {run_ids[2]}" in capsys.readouterr().out.split("<title>", 1)[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "0"], "--days must be"),
        (["--days", "400"], "--days must be"),
        (["--run", "../x"], "is not a run id"),
        (["--run", "nightly-1999-01-01"], "has no row in the last 30 day(s)"),
    ],
)
def test_report_command_refuses_bad_arguments(history, tmp_path, capsys, argv, message):
    lake, _, _ = history
    code = main(["report", "--html", "--destination", lake, "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_command_needs_a_format(history, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--destination", history[0]])
    assert exit_info.value.code == 2
    assert "--html" in capsys.readouterr().err


def test_an_empty_lake_gives_a_page_that_says_so(file_lake, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", "--html", "--destination", file_lake, "--out", str(out)]) == 0
    page = out.read_text()
    assert "No audit rows in the last 30 day(s)" in page and "<svg" not in page


def test_hostile_error_is_shown_whole_in_the_failures_list(history):
    lake, _, _ = history
    page = report_files.build_html(lake, 10)
    escaped = (
        HOSTILE_ERROR.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )
    assert escaped in page


# ------------------------------------------------------------------------------------------
# every run writes its report (the CLI; the function app's write_audit: tests/app)


def test_every_cli_run_writes_its_report_and_a_failure_does_not_fail_it(
    pg, monkeypatch, tmp_path, file_lake, capsys
):
    from tests.conftest import set_source_env

    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 25) g")
    pg.use_as(monkeypatch, "rep_pg")
    set_source_env(
        monkeypatch, "rep_down", host="127.0.0.1", port=closed_port(), database="test",
        username="postgres",
    )  # fmt: skip
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        f"r1,Y,postgresql,rep_pg,{pg.name},customers,FULL,,id\n"
        f"r2,Y,postgresql,rep_down,public,customers,FULL,,id\n"
    )
    argv = ["run", "--config", str(config), "--destination", file_lake]
    assert main([*argv, "--run-id", "run-rep-1"]) == 1  # one job failed
    out = capsys.readouterr().out
    folder = Path(file_lake[len("file://") :]) / "metadata" / "reports"
    assert f"report: {folder / 'run-rep-1.html'}" in out
    page = (folder / "run-rep-1.html").read_text()
    assert page == (folder / "latest.html").read_text()
    data = run_report.collect(file_lake, 1)
    assert data.run is not None and data.run.run_id == "run-rep-1"
    assert (data.run.counts["SUCCESS"], data.run.counts["FAILED"]) == (1, 1)
    assert data.run.rows_loaded == 25
    assert 'data-job="r1"' in page and 'data-job="r2"' in page and "rep_down" in page

    # a report that cannot be written: the run's outcome and audit are as without it
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("not a folder")
    assert main([*argv, "--run-id", "run-rep-2", "--job", "r1"]) == 0
    out = capsys.readouterr().out
    assert "report not written:" in out
    rows = [r for _, r in audit_rows(file_lake, [TODAY]) if r["run_id"] == "run-rep-2"]
    assert [(r["job_id"], r["status"]) for r in rows] == [("r1", "SUCCESS")]


def test_many_sources_are_drawn_as_the_biggest_and_other(file_lake):
    from ingest.reports import charts

    days = run_report.window(4)
    write_nights(file_lake, days, tables(24, per_source=2), seed=9)  # 12 sources
    data = run_report.collect(file_lake, 4)
    assert len(data.sources()) == 12
    svg = charts.rows_per_day_svg(data.days, data.rows_by_day, data.sources())
    labels = dict(re.findall(r'<g id="rows-total-([\d-]+)">\s*<text[^>]*>([\d,]+)</text>', svg))
    assert labels == {d.isoformat(): f"{n:,}" for d, n in data.rows_per_day().items()}
    legend = re.findall(r"<text[^>]*>(src_\d+|other)</text>", svg)
    assert legend == [*data.sources()[: charts.MAX_SOURCES], "other"]
