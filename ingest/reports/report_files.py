"""Run reports in the lake: `<lake>/metadata/reports/<run_id>.html` and `latest.html`.

- `report_after_run(destination, run_id)`: the hook of a run's audit step (the CLI's `run` and
  the function app's `write_audit` activity call it after the audit): builds the report of the
  last `DEFAULT_DAYS` days for that run and writes both files. It never raises: a failure is
  logged and returned in the run summary, the run and its audit are not affected.
- `read_report(destination, run_id)`: a stored report's HTML, or None (`GET
  /api/runs/{id}/report`). The id is checked against the run-id rule before any path is
  built, and the path is checked to be a direct child of the reports folder, so no id can
  name a file elsewhere.
- `build_html(destination, days, run_id)`: the page, for `dlt-ingest report --html`.

Every file is written whole: a rename into place on a local lake, one blob upload (content
type `text/html`) on blob storage, so a reader never sees half a page.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from ingest.lake.destination import Destination
from ingest.lake.layout import REPORTS_DIR
from ingest.reports import report_html, run_report
from ingest.reports.history import MAX_DAYS

log = logging.getLogger(__name__)

LATEST = "latest"
DEFAULT_DAYS = run_report.DEFAULT_DAYS
#: a run id (the rule of `ingest.run_request.RUN_ID`): letters, digits, `._:-`, 1-128 characters,
#: starting with a letter or digit, ASCII only. No `/`, `\\`, `%`, NUL or `..`-only name fits.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
CONTENT_TYPE = "text/html; charset=utf-8"
#: longest error text in a run summary (Durable payloads stay small)
MAX_ERROR_CHARS = 500


class BadReportId(ValueError):
    """Not a run id: no report file can have this name."""


def report_name(run_id: str) -> str:
    """The file name of a run's report; BadReportId for anything that is not a run id."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise BadReportId(f"{run_id!r} is not a run id")
    return f"{run_id}.html"


def report_path(dest: Destination, run_id: str) -> str:
    """The lake path of a run's report (`latest` for the newest), checked to be a direct child
    of the reports folder."""
    name = report_name(run_id)
    folder = dest.path(REPORTS_DIR)
    path = dest.path(REPORTS_DIR, name)
    if os.path.dirname(path) != folder or os.path.basename(path) != name:
        raise BadReportId(f"{run_id!r} does not name a file in {REPORTS_DIR}")
    if dest.protocol == "file":
        real_folder = os.path.realpath(folder)
        if os.path.dirname(os.path.realpath(path)) != real_folder:
            raise BadReportId(f"{run_id!r} does not name a file in {REPORTS_DIR}")
    return path


def _write(dest: Destination, fs: Any, run_id: str, text: str) -> str:
    path = report_path(dest, run_id)
    data = text.encode("utf-8")
    if dest.protocol == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        scratch = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(scratch, "wb") as handle:
            handle.write(data)
        os.replace(scratch, path)
        return path
    # the Azure SDK: only for blob-storage lakes
    from azure.storage.blob import ContentSettings

    blob = dest.container_client().get_blob_client(dest.blob_name(REPORTS_DIR, report_name(run_id)))
    blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(CONTENT_TYPE))
    return path


def build_html(destination: str, days: int = DEFAULT_DAYS, run_id: str | None = None) -> str:
    """The report page of `run_id` (default: the latest run) over the last `days` days."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be from 1 to {MAX_DAYS}, got {days}")
    return report_html.render(run_report.collect(destination, days, run_id))


def write_report(destination: str, run_id: str, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """Build run `run_id`'s report and write `<run_id>.html` and `latest.html`; returns the
    paths, the size, the page and the seconds it took. Raises what fails (LookupError: the run
    is not in the audit's last `days` days)."""
    clock = time.monotonic()
    report_name(run_id)  # a bad id fails before anything is read
    dest = Destination.from_url(destination)
    data = run_report.collect(destination, days, run_id)
    if data.run is None:
        raise LookupError(f"run {run_id} has no row in the last {days} day(s) of the audit")
    text = report_html.render(data)
    fs = dest.filesystem()
    path = _write(dest, fs, run_id, text)
    written = {
        "path": path,
        "latest": _write(dest, fs, LATEST, text),
        "bytes": len(text.encode("utf-8")),
        "seconds": round(time.monotonic() - clock, 3),
    }
    return {**written, "page": text}


def report_after_run(destination: str, run_id: str) -> dict[str, Any]:
    """After a run's audit: write its report. Never raises: a failure to build or write the
    report does not fail the run nor touch its audit; it is logged and returned."""
    try:
        written = write_report(destination, run_id)
    except Exception as exc:
        log.error("run %s: report not written: %s: %s", run_id, type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]}
    written.pop("page")
    log.info(
        "run %s: report %s (%s KB, %.1f s)",
        run_id,
        written["path"],
        f"{written['bytes'] // 1024:,}",
        written["seconds"],
    )
    return written


def report_page(destination: str, run_id: str) -> str | None:
    """The report of `run_id` for a reader: the stored page, else (a run from before reports,
    or whose report could not be written) built from the audit of the last `DEFAULT_DAYS`
    days and stored for next time (a failure to store is logged, the page still returned);
    None when neither exists. BadReportId when `run_id` is not a run id."""
    page = read_report(destination, run_id)
    if page is not None or run_id == LATEST:
        return page
    data = run_report.collect(destination, DEFAULT_DAYS, run_id)
    if data.run is None:
        return None
    page = report_html.render(data)
    dest = Destination.from_url(destination)
    try:
        _write(dest, dest.filesystem(), run_id, page)
    except Exception as exc:  # the reader gets the page all the same
        log.warning("run %s: report built but not stored: %s: %s", run_id, type(exc).__name__, exc)
    return page


def read_report(destination: str, run_id: str) -> str | None:
    """The stored report of `run_id` (`latest`: the newest), or None when there is none.
    BadReportId when `run_id` is not a run id."""
    dest = Destination.from_url(destination)
    path = report_path(dest, run_id)
    fs = dest.filesystem()
    try:
        return fs.cat_file(path).decode("utf-8")
    except FileNotFoundError:
        return None
