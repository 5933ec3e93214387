"""A safety net: no resolved secret value leaves the process through a log record.

The code never logs secret values on purpose (messages are built from `Secret` objects that
print `***`); this filter catches the accidents - a driver error quoting a connection URL, a
traceback showing a local variable. It replaces every sensitive value any live `Redactor`
knows with `***` in the record's message (after `%` formatting with its args), its exception
text and its stack text.

Which redactors: `build_resolver` registers the redactor of every resolver it builds. The
registry holds weak references, so values are forgotten with the resolver (one per job): they
are kept in memory for the job, never for the life of the process.

Installing: `ingest.runtime.logsetup.configure_logging` (the CLI) adds the filter to its
handler; the function app calls `install_redaction()` once its logging handlers exist (the
Functions host's, Application Insights'); it adds the filter to every handler of the root
logger.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable

MASK = "***"


class Redactor:
    """Remembers sensitive values and removes them from text. Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value and len(value) >= 3:  # masking 1-2 character strings would mangle every text
            with self._lock:
                self._values.add(value)

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


_registry: weakref.WeakSet[Redactor] = weakref.WeakSet()
_registry_lock = threading.Lock()


def register_redactor(redactor: Redactor) -> Redactor:
    """Make `redactor`'s values part of what the logging filter removes (while it lives)."""
    with _registry_lock:
        _registry.add(redactor)
    return redactor


def active_redactors() -> list[Redactor]:
    with _registry_lock:
        return list(_registry)


def redact_text(text: str, redactors: Iterable[Redactor] | None = None) -> str:
    for redactor in active_redactors() if redactors is None else redactors:
        text = redactor.redact(text)
    return text


class RedactionFilter(logging.Filter):
    """Rewrites records that contain a secret value; lets every record through."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = active_redactors()
        if not redactors:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        clean = redact_text(message, redactors)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or self._formatter.formatException(record.exc_info)
            clean = redact_text(text, redactors)
            record.exc_text = clean
            if clean != text:
                # handlers that format exc_info themselves (OpenTelemetry) must not see it
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text, redactors)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, redactors)
        return True


def install_redaction(
    redactor: Redactor | None = None, logger: logging.Logger | None = None
) -> RedactionFilter:
    """Register `redactor` (when given) and add the redaction filter to every handler of
    `logger` (default: the root logger) that does not have it yet. Safe to call again after
    more handlers were added."""
    if redactor is not None:
        register_redactor(redactor)
    target = logger or logging.getLogger()
    installed = None
    for handler in target.handlers:
        existing = [f for f in handler.filters if isinstance(f, RedactionFilter)]
        if existing:
            installed = installed or existing[0]
            continue
        installed = installed or RedactionFilter()
        handler.addFilter(installed)
    return installed or RedactionFilter()
