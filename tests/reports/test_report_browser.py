"""The run report in a real browser: headless Chromium, network off, loads the report a run
wrote into the lake; no console error; the rendered page holds the audit's numbers (one grid
cell per table and day with the audit's status, the rows chart's day totals, the run's
counts); a screenshot is written to the test's folder."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest

from ingest.audit import read_audit
from ingest.lake.destination import Destination
from ingest.reports import report_files, run_report
from tests import browser
from tests.reports.audit_factory import HOSTILE_ERROR, tables, write_nights

GRID = """
return Array.from(document.querySelectorAll('table.grid tbody tr[data-job]')).map(tr => ({
  job: tr.dataset.job,
  cells: Array.from(tr.querySelectorAll('td')).map(td => ({
    status: td.className, title: td.title,
    link: td.querySelector('a') ? td.querySelector('a').getAttribute('href') : null}))
}));
"""
DAYS = "return Array.from(document.querySelectorAll('table.grid thead th[title]')).map(th => th.title);"
TOTALS = """
return Array.from(document.querySelectorAll('#rows-chart svg g[id^="rows-total-"]')).map(g => {
  const box = g.getBoundingClientRect();
  return [g.id.slice('rows-total-'.length), g.textContent.trim(), box.width > 0 && box.height > 0];
});
"""
CARDS = """
const out = {};
document.querySelectorAll('#run .card').forEach(c => { out[c.dataset.k] = c.querySelector('b').textContent; });
return out;
"""
CHARTS = """
return Array.from(document.querySelectorAll('figure svg')).map(svg => {
  const box = svg.getBoundingClientRect(); return [box.width, box.height];
});
"""


@pytest.fixture(scope="module")
def chromium():
    try:
        with browser.offline_chromium() as page:
            yield page
    except browser.BrowserMissing as exc:
        pytest.fail(str(exc))


def expected_from_audit(lake: str, days: list[dt.date]):
    dest = Destination.from_url(lake)
    latest: dict[tuple[str, dt.date], dict[str, str]] = {}
    rows_per_day: dict[dt.date, int] = defaultdict(int)
    for day in days:
        for row in read_audit(dest, day):
            key = (row["job_id"], day)
            if key not in latest or row["started_at"] >= latest[key]["started_at"]:
                latest[key] = row
            rows_per_day[day] += int(row["rows_loaded"])
    return latest, rows_per_day


def test_the_report_renders_offline_with_the_audits_numbers(chromium, file_lake, tmp_path):
    days = run_report.window(30)
    jobs = tables(15, per_source=5)
    run_ids = write_nights(file_lake, days[5:], jobs, seed=11)  # no audit on the first 5 days
    written = report_files.write_report(file_lake, run_ids[-1])  # what every run writes
    page = Path(written["path"])
    assert page.name == f"{run_ids[-1]}.html"

    chromium.load(page.as_uri())
    assert chromium.run("return document.title") == f"Ingestion report \u00b7 run {run_ids[-1]}"
    assert chromium.console_errors() == []
    assert chromium.run("return document.scripts.length") == 0

    # the status grid: one cell per table and day, coloured with the audit's status
    latest, rows_per_day = expected_from_audit(file_lake, days)
    assert chromium.run(DAYS) == [d.isoformat() for d in days]
    grid = chromium.run(GRID)
    assert sorted(r["job"] for r in grid) == sorted(j for j, _, _ in jobs)
    failed_links = []
    for row in grid:
        assert len(row["cells"]) == len(days)
        for day, cell in zip(days, row["cells"], strict=True):
            audit = latest.get((row["job"], day))
            assert cell["status"] == (audit["status"] if audit else ""), (row["job"], day)
            if audit and audit["status"] == "FAILED":
                # hover: the error; click: the failure's entry in the list below
                assert HOSTILE_ERROR.split("\n")[0][:60] in cell["title"]
                failed_links.append(cell["link"])
    assert failed_links and all(link and link.startswith("#e") for link in failed_links)
    entry = chromium.run("return document.querySelector(arguments[0]).textContent", failed_links[0])
    assert '<script>alert("x")</script>' in entry and "東京" in entry

    # the rows chart: the total above each day's bar is the audit's, and it is drawn
    totals = {day: (text, drawn) for day, text, drawn in chromium.run(TOTALS)}
    assert totals == {d.isoformat(): (f"{rows_per_day.get(d, 0):,}", True) for d in days}
    assert chromium.run("return document.getElementById('rows-chart').dataset.total") == str(
        sum(rows_per_day.values())
    )
    assert all(w > 300 and h > 100 for w, h in chromium.run(CHARTS))

    # the run's cards
    run_rows = [r for (_, _), r in latest.items() if r["run_id"] == run_ids[-1]]
    cards = chromium.run(CARDS)
    assert cards["run"] == run_ids[-1] and cards["tables"] == str(len(jobs))
    for status in ("SUCCESS", "WARN", "FAILED", "SKIPPED"):
        assert cards[status.lower()] == str(sum(1 for r in run_rows if r["status"] == status))
    assert cards["rows loaded"] == f"{sum(int(r['rows_loaded']) for r in run_rows):,}"

    shot = chromium.screenshot(tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert chromium.console_errors() == []


def test_the_browser_check_sees_network_use_and_script_errors(chromium, tmp_path):
    """The same harness on a page that needs the network: it cannot load offline, and the
    console says so (so the check above can fail)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head>"
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head>'
        "<body><script>notDefinedAnywhere()</script></body></html>"
    )
    chromium.load(bad.as_uri())
    errors = chromium.console_errors()
    assert any("cdn.jsdelivr.net" in e for e in errors), errors
    assert any("notDefinedAnywhere" in e for e in errors), errors
