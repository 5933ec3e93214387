"""Logging for the command line (the function app uses the Functions host's logging).

One stream (stderr), one format for the framework's records and dlt's:
- `text` (default): `2026-12-07T03:54:42.607+01:00 WARNING [<run id> <job id>] dlt: ...`,
  local time with its UTC offset;
- `json` (`--log-format json`, `INGEST_LOG_FORMAT=json`): one JSON object per line with
  `time`, `level`, `logger`, `message`, `run_id`, `job_id` (and `exception`), for log
  shippers.

dlt logs through its own `dlt` logger with a handler and format of its own, and sets them
again whenever it initialises its runtime. `route_dlt_logging` gives that logger one handler
that hands every record to the root logger's handlers (ours here, the Functions host's and
Application Insights' in the function app); dlt's later attempts to set a format on it are
ignored. dlt's warnings that are expected for this framework's destination are explained once
per process and silenced after that (`ExpectedDltWarnings`).

A live progress record (`extra={"live": True}`, `ingest.job.progress`) is drawn in place
(carriage return, no new line) when the text format goes to a terminal, and dropped
otherwise; the next ordinary record clears it first.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

from ingest.runtime.logcontext import ContextFilter
from ingest.secrets.redaction import RedactionFilter

TEXT, JSON = "text", "json"
LOG_FORMATS = (TEXT, JSON)
FORMAT = "%(asctime)s %(levelname)-7s [%(run_id)s %(job_id)s] %(name)s: %(message)s"
#: libraries whose INFO records are noise for a user (they still show warnings and errors)
NOISY = ("dlt", "azure", "urllib3", "sqlalchemy", "fsspec", "adlfs")
#: erase from the cursor to the end of the line (ANSI)
_CLEAR_LINE = "\r\x1b[K"


def timestamp(record: logging.LogRecord) -> str:
    """The record's local time with milliseconds and UTC offset (ISO 8601)."""
    moment = dt.datetime.fromtimestamp(record.created).astimezone()
    return moment.isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return timestamp(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", "-"),
            "job_id": getattr(record, "job_id", "-"),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    return JsonFormatter() if log_format == JSON else TextFormatter()


class IngestHandler(logging.StreamHandler):
    """The CLI's stderr handler: ordinary records formatted, live progress drawn in place."""

    _ingest = True

    def __init__(self, stream: TextIO, log_format: str):
        super().__init__(stream)
        self.log_format = log_format
        self.setFormatter(formatter_for(log_format))
        self._live_shown = False
        try:
            terminal = bool(stream.isatty())
        except (AttributeError, ValueError):
            terminal = False
        #: live lines only where a person watches: text on a terminal
        self.live = terminal and log_format == TEXT

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "live", False):
            if self.live:
                self._draw(record.getMessage())
            return
        if self._live_shown:
            self._clear()
        super().emit(record)

    def _draw(self, text: str) -> None:  # called by handle(), under the handler's lock
        self.stream.write(_CLEAR_LINE + text)
        self.stream.flush()
        self._live_shown = True

    def _clear(self) -> None:
        self.stream.write(_CLEAR_LINE)
        self._live_shown = False

    def close(self) -> None:
        if self._live_shown:
            self._clear()
            self.flush()
        super().close()


#: dlt's warnings that are expected with this framework's destination: the texts that
#: identify a kind, and what to say instead (once per process)
EXPECTED_DLT_WARNINGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "for `data_type=json` failed. Using fallback strategies",
            "Received `data_type='json'`",
        ),
        "dlt converts json/jsonb columns to JSON text while it extracts (its warnings about "
        "this are silenced; this note is shown once): expected here. The lake stores such a "
        "column as a Parquet string holding each value's JSON, and the lake's dlt schema "
        "types it json.",
    ),
    (
        ("It is up to destination to coerce the differences",),
        "dlt reports that the Arrow data of a table differ from its column hints (a json "
        "column read as text, a precision or time zone hint): expected here. The Parquet "
        "files keep the values exactly as read and declare their own types; the lake's dlt "
        "schema keeps dlt's. This note is shown once; dlt's warning about it is silenced.",
    ),
)


class ExpectedDltWarnings(logging.Filter):
    """Turns each kind of expected dlt warning into one explanation per process (INFO), then
    drops it. Other records pass unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._explained: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("dlt") or record.levelno != logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        for kind, (markers, explanation) in enumerate(EXPECTED_DLT_WARNINGS):
            if any(marker in message for marker in markers):
                if kind in self._explained:
                    return False
                self._explained.add(kind)
                record.msg, record.args = explanation, None
                record.levelno, record.levelname = logging.INFO, "INFO"
                return True
        return True


class ToRootLogger(logging.Handler):
    """The `dlt` logger's one handler: every record goes to the root logger's handlers, in
    their format. dlt calls `setFormatter` on it when it (re)initialises: ignored."""

    _ingest = True

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ExpectedDltWarnings())

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802
        return None

    def emit(self, record: logging.LogRecord) -> None:
        root = logging.getLogger()
        if record.levelno >= root.getEffectiveLevel():
            root.handle(record)


def route_dlt_logging() -> None:
    """Give dlt's logger the one handler that passes its records to the root logger (removing
    the stream handler dlt made, if it already initialised its logging). Idempotent."""
    logger = logging.getLogger("dlt")
    for handler in list(logger.handlers):
        if not isinstance(handler, ToRootLogger):
            logger.removeHandler(handler)
    if not logger.handlers:
        logger.addHandler(ToRootLogger())
    logger.propagate = False  # the handler passes records on; propagating would show them twice


def configure_logging(
    level: int = logging.INFO, log_format: str = TEXT, stream: TextIO | None = None
) -> None:
    """One stderr handler with run id and job id on every record, in `log_format`; dlt's
    records through it; third parties quiet below WARNING."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ingest", False):
            root.removeHandler(handler)
            handler.close()
    handler = IngestHandler(stream or sys.stderr, log_format)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())  # resolved secret values never reach stderr
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if level <= logging.DEBUG:  # --verbose: dlt's progress records too (extract, normalize)
        logging.getLogger("dlt").setLevel(logging.INFO)
    route_dlt_logging()


def current_log_format() -> str:
    """The format of the CLI's handler (worker processes log the same way); text without one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, IngestHandler):
            return handler.log_format
    return TEXT


def live_progress_enabled() -> bool:
    """Whether this process's log draws live progress lines (text on a terminal)."""
    return any(
        isinstance(handler, IngestHandler) and handler.live
        for handler in logging.getLogger().handlers
    )
