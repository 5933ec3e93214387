"""A safety net: no resolved secret value leaves the process through a log record or an error,
in any of the forms libraries encode it in.

The code never logs secret values on purpose (messages are built from `Secret` objects that
print `***`); this filter catches the accidents - a driver error quoting a connection URL, a
traceback showing a local variable, an API echoing the request URL in its error body. It
replaces every sensitive value any live `Redactor` knows with `***` in the record's message
(after `%` formatting with its args), its exception text, its stack text and its extra string
attributes; `run_job` passes each job's error through its redactor the same way.

The redaction rule (README "Security notes"): a secret is removed
- as it is;
- URL/percent-encoded (`quote`, `quote_plus`: form encoding with `+` for a space; upper- and
  lower-case hex), also partly encoded: the text is decoded (as a path and as a form) and
  where the decoded text holds a secret, the original characters it came from are removed;
- JSON-escaped (non-ASCII as `\\uXXXX` escapes or raw, `/` as `\\/` or not; also twice, JSON
  text inside JSON) and as Python's `repr` escapes it;
- base64-encoded, standard and URL-safe alphabet, padded or not: on its own (a token) and inside
  a longer encoded text such as basic auth's `base64(username:password)`, where the whole
  base64 run is removed. Embedded base64 is recognised for values of at least
  `MIN_EMBEDDED_BASE64_CHARS` characters (shorter ones: only when encoded on their own).
Values shorter than `MIN_SECRET_CHARS` characters are not masked (they would mangle every text).

Which redactors: `build_resolver` registers the redactor of every resolver it builds. The
registry holds weak references, so values are forgotten with the resolver (one per job): they
are kept in memory for the job, never for the life of the process.

Installing: `ingest.runtime.logsetup.configure_logging` (the CLI) adds the filter to its
handler; the function app calls `install_redaction()` once its logging handlers exist (the
Functions host's, Application Insights'); it adds the filter to every handler of the root
logger.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
#: shorter values are not masked: masking 1-2 character strings would mangle every text
MIN_SECRET_CHARS = 3
#: a secret inside a longer base64 text is found from this length on (shorter ones would
#: match ordinary words)
MIN_EMBEDDED_BASE64_CHARS = 8
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _lower_hex(text: str) -> str:
    return _HEX_ESCAPE.sub(lambda m: m.group(0).lower(), text)


def encoded_forms(value: str) -> set[str]:
    """Every whole-text encoding of `value` that the redactor removes (see module doc)."""
    forms = {value}
    for encoded in (
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        quote_plus(value, safe="/"),
    ):
        forms |= {encoded, _lower_hex(encoded)}
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        twice = json.dumps(escaped, ensure_ascii=ascii_only)[1:-1]  # JSON text inside JSON
        forms |= {escaped, escaped.replace("/", "\\/"), twice}
    forms.add(repr(value)[1:-1])
    raw = value.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
    return {form for form in forms if form}


def embedded_base64(value: str) -> set[str]:
    """The parts of a base64 text that encode only `value`'s bytes, whichever byte offset
    `value` sits at inside the encoded text (0, 1 or 2 modulo 3): found in any base64 of a
    text that holds `value`, e.g. `base64("user:" + value)`."""
    if len(value) < MIN_EMBEDDED_BASE64_CHARS:
        return set()
    raw = value.encode("utf-8")
    cores = set()
    for offset in range(3):
        padded = b"\0" * offset + raw
        whole = len(padded) // 3 * 3  # the last partial group depends on the bytes after
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(padded[:whole]).decode("ascii")
            core = text[4:] if offset else text  # the first group mixes in the bytes before
            if len(core) >= 8:
                cores.add(core)
    return cores


class Redactor:
    """Remembers sensitive values and removes them, in every encoded form, from text.
    Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._cores: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if not value or len(value) < MIN_SECRET_CHARS:
            return
        forms, cores = encoded_forms(value), embedded_base64(value)
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            self._forms |= forms
            self._cores |= cores
            self._pattern = None

    def _compiled(self) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
        with self._lock:
            if self._pattern is None and self._values:
                # longest first: a form that contains another is removed whole
                forms = sorted(self._forms, key=len, reverse=True)
                cores = sorted(self._cores, key=len, reverse=True)
                parts = [f"(?P<b64>{'|'.join(map(re.escape, cores))})"] if cores else []
                parts.append(f"(?P<plain>{'|'.join(map(re.escape, forms))})")
                self._pattern = re.compile("|".join(parts))
            return self._pattern, tuple(self._values)

    def redact(self, text: str) -> str:
        pattern, values = self._compiled()
        if pattern is None or not text:
            return text
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(text):
            start, end = match.span()
            if match.lastgroup == "b64":  # the whole base64 run that holds it
                while start > 0 and text[start - 1] in _BASE64_ALPHABET:
                    start -= 1
                while end < len(text) and text[end] in _BASE64_ALPHABET:
                    end += 1
                while end < len(text) and text[end] == "=":
                    end += 1
            spans.append((start, end))
        if "%" in text:  # partly encoded forms: found in the decoded text, masked in the original
            for plus_is_space in (False, True):
                decoded, origin = _percent_decoded(text, plus_is_space)
                for value in values:
                    start = decoded.find(value)
                    while start >= 0:
                        end = start + len(value)
                        spans.append((origin[start][0], origin[end - 1][1]))
                        start = decoded.find(value, end)
        if not spans:
            return text
        return _mask(text, spans)


_ESCAPE_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _percent_decoded(text: str, plus_is_space: bool) -> tuple[str, list[tuple[int, int]]]:
    """`text` with its `%XX` escapes decoded (UTF-8; with `plus_is_space`, `+` as a space as in
    forms), and for each decoded character the span of `text` it came from."""
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    position = 0
    for match in _ESCAPE_RUN.finditer(text):
        for index in range(position, match.start()):
            out.append(" " if plus_is_space and text[index] == "+" else text[index])
            origin.append((index, index + 1))
        raw = bytes.fromhex(match.group(0).replace("%", ""))
        at = match.start()
        for char in raw.decode("utf-8", "surrogateescape"):
            width = 3 * len(char.encode("utf-8", "surrogateescape"))
            out.append(char)
            origin.append((at, at + width))
            at += width
        position = match.end()
    for index in range(position, len(text)):
        out.append(" " if plus_is_space and text[index] == "+" else text[index])
        origin.append((index, index + 1))
    return "".join(out), origin


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    out, position = [], 0
    for start, end in sorted(spans):
        if end <= position:
            continue
        start = max(start, position)
        out += [text[position:start], MASK]
        position = end
    out.append(text[position:])
    return "".join(out)


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


#: what every LogRecord has; other attributes came from `extra=`
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
        for name, value in vars(record).items():  # extra={...} (telemetry properties)
            if name not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact_text(value, redactors))
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
