"""The run report as one self-contained HTML page (no script, no stylesheet or font to fetch).

`render(data)` turns a `ingest.reports.run_report.ReportData` into the page: the run (start,
duration, tables succeeded / warned / failed / skipped, rows), a status grid of tables x days
(each cell coloured by the table's latest status that day, its loads and error on hover; a
failed or warned cell links to its entry in the list of failures), rows loaded per day (total
and per source) and the slowest tables as SVG charts (`ingest.reports.charts`), and the
reconciliation mismatches, schema changes and delete / late-row counts, each linking to its
table's grid row. Every text from the audit is HTML-escaped. A Content-Security-Policy in the
page forbids scripts and any fetch, so it stays inert wherever it is opened.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence

from ingest.reports import charts
from ingest.reports.run_report import PROBLEMS, STATUSES, Load, ReportData, TableKey

#: tables drawn in the "slowest tables" chart
SLOWEST = 10
#: failures / warnings listed in full (newest first); older ones stay in the grid's hover text
MAX_PROBLEMS = 300
#: mismatches, schema changes and count rows listed (newest first)
MAX_LISTED = 300
#: characters of an error shown in a grid cell's hover text
CELL_ERROR_CHARS = 200
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
:root{--ok:#2e9d5b;--warn:#e0a526;--fail:#d1343b;--skip:#8aa0b8;--none:#eef0f2;--ink:#1d232a}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--ink);
margin:0 auto;padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#5b6570;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #dde1e5;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#5b6570;font-size:12px}
.card.SUCCESS b{color:var(--ok)}.card.WARN b{color:#a87400}.card.FAILED b{color:var(--fail)}
.card.SKIPPED b{color:#5a7088}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.scroll{overflow:auto;max-height:80vh;border:1px solid #e3e6e9}
table{border-collapse:collapse}
.grid{font-size:11px}
.grid th,.grid td{padding:0}
.grid thead th{position:sticky;top:0;background:#fff;z-index:2;writing-mode:vertical-rl;
transform:rotate(180deg);height:44px;font-weight:normal;color:#5b6570}
.grid tbody th{position:sticky;left:0;background:#fff;z-index:1;text-align:left;
font-weight:normal;white-space:nowrap;padding:0 8px 0 4px;max-width:340px;overflow:hidden;
text-overflow:ellipsis}
.grid tbody tr.g th{font-weight:bold;background:#f6f7f8;padding-top:4px}
.grid td{width:14px;height:14px;min-width:14px;border:1px solid #fff;background:var(--none)}
.grid td a{display:block;width:100%;height:100%}
.grid thead th.run{color:#000;font-weight:bold;background:#ffe8a3}
.grid tbody tr:target th{background:#fff3bf}
i.SUCCESS,.grid td.SUCCESS{background:var(--ok)}i.WARN,.grid td.WARN{background:var(--warn)}
i.FAILED,.grid td.FAILED{background:var(--fail)}i.SKIPPED,.grid td.SKIPPED{background:var(--skip)}
i.none{background:var(--none)}
figure{margin:8px 0}figure svg{width:100%;max-width:1150px;height:auto}
figcaption{color:#5b6570;font-size:12px}
.list{font-size:12px}
.list th,.list td{border-bottom:1px solid #eceef0;padding:3px 8px;text-align:left;
vertical-align:top}
.list td.n,.list th.n{text-align:right;font-variant-numeric:tabular-nums}
.list tr:target{background:#fff3bf}
.err{white-space:pre-wrap;word-break:break-word;max-width:720px}
.muted{color:#5b6570}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: str) -> str:
    """An audit timestamp for people: `2026-05-01 02:00:13 UTC`."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _short(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _Anchors:
    """Grid-row ids (`t<n>`) per job and failure-entry ids (`e<n>`) per load."""

    def __init__(self, tables: Sequence[TableKey], problems: Sequence[Load]):
        self.rows = {table.job_id: f"t{index}" for index, table in enumerate(tables)}
        self.problems = {id(load): f"e{index}" for index, load in enumerate(problems)}

    def table_link(self, load: Load) -> str:
        key = load.key
        anchor = self.rows.get(key.job_id)
        text = f"{_e(key.job_id)} {_e(key.label)}"
        return f'<a href="#{anchor}">{text}</a>' if anchor else text


def _run_section(data: ReportData) -> str:
    run = data.run
    if run is None:
        return (
            '<section id="run"><p class="muted">No run in this window of the audit.</p></section>'
        )
    cards = [
        ("run", _e(run.run_id), ""),
        ("started", _e(_time(run.started_at)), ""),
        ("duration", _e(_duration(run.duration_s)), ""),
        ("tables", f"{run.tables:,}", ""),
    ]
    cards += [(status.lower(), f"{run.counts.get(status, 0):,}", status) for status in STATUSES]
    cards.append(("rows loaded", f"{run.rows_loaded:,}", ""))
    body = "".join(
        f'<div class="card {cls}" data-k="{_e(label)}"><b>{value}</b><span>{_e(label)}</span></div>'
        for label, value, cls in cards
    )
    return (
        f'<section id="run"><div class="cards">{body}</div>'
        f"<p class=\"meta\">From the first table's start to the last table's finish: "
        f"{_e(_time(run.started_at))} \u2013 {_e(_time(run.finished_at))}.</p></section>"
    )


def _cell(data: ReportData, anchors: _Anchors, table: TableKey, day: dt.date) -> str:
    loads = data.cells.get((table.job_id, day))
    if not loads:
        return "<td></td>"
    lines = [f"{day.isoformat()} job {table.job_id}"]
    for load in loads:
        line = f"{load.status} {load.rows:,} rows {load.seconds:.1f} s"
        if load.status in PROBLEMS:
            error = load.row.get("error") or load.row.get("reconcile_note") or ""
            if error:
                line += ": " + _short(error, CELL_ERROR_CHARS)
        lines.append(line)
    latest = loads[-1]
    status = latest.status if latest.status in STATUSES else "other"
    anchor = anchors.problems.get(id(latest))
    inner = f'<a href="#{anchor}"></a>' if anchor else ""
    return f'<td class="{status}" title="{_e(chr(10).join(lines))}">{inner}</td>'


def _grid_section(data: ReportData, anchors: _Anchors) -> str:
    run_day = data.run.day if data.run else None
    marks = {day: ' class="run"' if day == run_day else "" for day in data.days}
    head = "".join(
        f'<th{marks[day]} title="{day.isoformat()}">{day:%m-%d}</th>' for day in data.days
    )
    rows: list[str] = []
    source = None
    width = len(data.days) + 1
    for table in data.tables:
        if table.source_name != source:
            source = table.source_name
            rows.append(f'<tr class="g"><th colspan="{width}">{_e(source)}</th></tr>')
        cells = "".join(_cell(data, anchors, table, day) for day in data.days)
        rows.append(
            f'<tr id="{anchors.rows[table.job_id]}" data-job="{_e(table.job_id)}">'
            f'<th title="{_e(table.job_id)} {_e(table.label)}">{_e(table.job_id)} '
            f"{_e(table.table_name)}</th>{cells}</tr>"
        )
    legend = (
        "".join(f'<span><i class="{status}"></i>{status}</span>' for status in STATUSES)
        + '<span><i class="none"></i>no load</span>'
    )
    return (
        '<section id="grid"><h2>Status by table and day</h2>'
        f'<p class="legend">{legend}</p>'
        f'<p class="meta">{len(data.tables):,} table(s) x {len(data.days)} day(s), UTC dates of '
        "the audit files; a cell shows the table's latest load that day (hover: every load and "
        "its error; click a failed or warned cell for its entry below). The highlighted date is "
        "the run's day.</p>"
        '<div class="scroll"><table class="grid">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        "</section>"
    )


def _rows_section(data: ReportData) -> str:
    per_day = data.rows_per_day()
    total = sum(per_day.values())
    sources = data.sources()
    svg = charts.rows_per_day_svg(data.days, data.rows_by_day, sources)
    source_totals = {
        source: sum(day.get(source, 0) for day in data.rows_by_day.values()) for source in sources
    }
    table_rows = "".join(
        f'<tr><td>{_e(s)}</td><td class="n">{source_totals[s]:,}</td></tr>' for s in sources
    )
    return (
        '<section id="rows"><h2>Rows loaded per day</h2>'
        f'<figure id="rows-chart" data-total="{total}">{svg}<figcaption>Rows loaded per UTC day '
        f"(all loads of the day, by source; the number above a bar is the day's total). "
        f"Window total: <b>{total:,}</b> rows.</figcaption></figure>"
        '<table class="list" id="rows-by-source"><thead><tr><th>source</th>'
        f'<th class="n">rows in the window</th></tr></thead><tbody>{table_rows}</tbody></table>'
        "</section>"
    )


def _slowest_section(data: ReportData, anchors: _Anchors) -> str:
    slowest = data.slowest(SLOWEST)
    if not slowest:
        return ""
    series = [(f"{t.job_id} {t.label}", data.seconds_by_day.get(t.job_id, {})) for t in slowest]
    svg = charts.durations_svg(data.days, series)
    rows = []
    for table in slowest:
        per_day = data.seconds_by_day.get(table.job_id, {})
        last_day = max(per_day) if per_day else None
        rows.append(
            f'<tr><td><a href="#{anchors.rows[table.job_id]}">{_e(table.job_id)} '
            f"{_e(table.label)}</a></td>"
            f'<td class="n">{sum(per_day.values()):,.1f}</td>'
            f'<td class="n">{max(per_day.values(), default=0):,.1f}</td>'
            f'<td class="n">{per_day.get(last_day, 0) if last_day else 0:,.1f}</td></tr>'
        )
    return (
        '<section id="slowest"><h2>Slowest tables</h2>'
        f'<figure id="durations-chart">{svg}<figcaption>Seconds spent loading per UTC day, for '
        f"the {len(slowest)} table(s) that spent the most time over the window.</figcaption>"
        '</figure><table class="list"><thead><tr><th>table</th><th class="n">seconds, window'
        '</th><th class="n">worst day</th><th class="n">last day</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _list_section(
    section_id: str,
    title: str,
    loads: Sequence[Load],
    columns: Sequence[tuple[str, str]],
    anchors: _Anchors,
    *,
    empty: str,
    limit: int = MAX_LISTED,
    row_ids: bool = False,
) -> str:
    """A table of loads: day, run, table (a link to its grid row), then `columns`
    ((audit column, heading); a heading ending in "#" is a number)."""
    if not loads:
        return f'<section id="{section_id}"><h2>{title}</h2><p class="muted">{empty}</p></section>'
    heads = "".join(
        f'<th class="n">{_e(h[:-1])}</th>' if h.endswith("#") else f"<th>{_e(h)}</th>"
        for _, h in columns
    )
    body = []
    for load in loads[:limit]:
        cells = []
        for column, heading in columns:
            value = load.row.get(column) or ""
            if column == "error" and not value:  # a WARN load: its reconciliation note
                value = load.row.get("reconcile_note") or ""
            if heading.endswith("#"):
                cells.append(f'<td class="n">{_e(value)}</td>')
            elif column in ("error", "reconcile_note", "schema_changes"):
                cells.append(f'<td class="err">{_e(value)}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        row_id = f' id="{anchors.problems[id(load)]}"' if row_ids else ""
        body.append(
            f"<tr{row_id}><td>{load.day.isoformat()}</td><td>{_e(load.row.get('run_id'))}</td>"
            f"<td>{anchors.table_link(load)}</td>{''.join(cells)}</tr>"
        )
    more = (
        f'<p class="muted">{len(loads) - limit:,} older entr(ies) not listed.</p>'
        if len(loads) > limit
        else ""
    )
    return (
        f'<section id="{section_id}"><h2>{title}</h2><table class="list"><thead><tr>'
        f"<th>day</th><th>run</th><th>table</th>{heads}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{more}</section>"
    )


def _sections_after_charts(data: ReportData, anchors: _Anchors) -> Iterable[str]:
    yield _list_section(
        "problems",
        "Failures and warnings",
        data.problems,
        (("status", "status"), ("rows_loaded", "rows#"), ("error", "error or note")),
        anchors,
        empty="No failed or warned load in this window.",
        limit=MAX_PROBLEMS,
        row_ids=True,
    )
    yield _list_section(
        "mismatches",
        "Reconciliation mismatches",
        data.mismatches,
        (
            ("status", "status"),
            ("source_rows", "source rows#"),
            ("rows_loaded", "rows loaded#"),
            ("reconcile_note", "note"),
        ),
        anchors,
        empty="No reconciliation MISMATCH in this window.",
    )
    yield _list_section(
        "schema",
        "Schema changes",
        data.schema_changes,
        (("status", "status"), ("schema_changes", "change")),
        anchors,
        empty="No schema change in this window.",
    )
    if data.extra_count_columns:  # only when the audit has such columns (see run_report)
        yield _list_section(
            "counts",
            "Deletes and late rows",
            data.extra_counts,
            [(c, c + "#") for c in data.extra_count_columns],
            anchors,
            empty="No deleted or late rows counted in this window.",
        )


def render(data: ReportData) -> str:
    """The whole page."""
    anchors = _Anchors(data.tables, data.problems[:MAX_PROBLEMS])
    run_id = data.run.run_id if data.run else ""
    title = "Ingestion report" + (f" \u00b7 run {_e(run_id)}" if run_id else "")
    window = f"{data.days[0].isoformat()} \u2013 {data.days[-1].isoformat()}" if data.days else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<header><h1>Ingestion run report</h1>",
        f'<p class="meta">Lake {_e(data.lake)} \u00b7 audit of {len(data.days)} day(s), '
        f"{_e(window)} ({data.loads:,} load(s)) \u00b7 generated "
        f"{data.generated_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC</p></header>",
        _run_section(data),
    ]
    if data.tables:
        parts += [
            _grid_section(data, anchors),
            _rows_section(data),
            _slowest_section(data, anchors),
            *_sections_after_charts(data, anchors),
        ]
    else:
        parts.append(
            f'<p class="muted">No audit rows in the last {len(data.days)} day(s) of this lake.</p>'
        )
    parts.append("</body></html>")
    return "\n".join(parts)
