"""Secret redaction in every encoded form (issue 15, class 2), property-based: for any secret
and any of the encodings libraries put secrets in (URL/percent, form, base64 standard and
URL-safe - also inside basic auth's `user:password` - JSON-escaped, Python repr), the rendered
log record, the job's error and its audit row never contain it.

The job path is the real one: `run_job` with a source whose driver fails quoting the encoded
secret (as a driver quoting its connection URL, or an API echoing a request, does), the CLI's
log handler with its redaction filter, `write_audit` into a lake."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.config import JobConfig
from ingest.secrets.redaction import MASK, RedactionFilter, Redactor, register_redactor
from ingest.secrets.resolver import SecretResolver, StaticSecrets
from ingest.sources import REGISTRY
from ingest.sources.base import SourceBuilder
from tests.fixtures.audit import write_audit_json
from tests.fixtures.jobs import run_task


def _b64(text: str, urlsafe: bool = False, pad: bool = True) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    out = encode(text.encode("utf-8")).decode("ascii")
    return out if pad else out.rstrip("=")


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _same(encode):
    return lambda s: (encode(s), encode(s))


#: how libraries put a secret into text: name -> secret -> (the text, the part of it that
#: encodes the secret and must not survive; framing such as `Basic ` may stay)
ENCODINGS = {
    "plain": _same(lambda s: s),
    "percent": _same(lambda s: quote(s, safe="")),
    "percent_path": _same(quote),
    "percent_lower_hex": _same(lambda s: _lower_hex(quote(s, safe=""))),
    "form": _same(quote_plus),
    "query_string": lambda s: (
        "https://api.example.com/v1/items?" + urlencode({"api_key": s, "page": 2}),
        quote_plus(s),
    ),
    "base64": _same(_b64),
    "base64_urlsafe": _same(lambda s: _b64(s, urlsafe=True)),
    "base64_unpadded": _same(lambda s: _b64(s, pad=False)),
    "basic_auth": lambda s: (
        "Basic " + _b64(f"ingest_reader:{s}"),
        _b64(f"ingest_reader:{s}"),
    ),
    "basic_auth_urlsafe": _same(lambda s: _b64(f"u:{s}", urlsafe=True)),
    "json": lambda s: (json.dumps({"api_key": s}), json.dumps(s)[1:-1]),
    "json_unicode": lambda s: (
        json.dumps({"api_key": s}, ensure_ascii=False),
        json.dumps(s, ensure_ascii=False)[1:-1],
    ),
    "json_in_json": lambda s: (
        json.dumps({"body": json.dumps({"api_key": s})}),
        json.dumps(json.dumps(s)[1:-1])[1:-1],
    ),
    "url_in_json": lambda s: (
        json.dumps({"echo": "/v1/items?" + urlencode({"key": s})}),
        quote_plus(s),
    ),
    "repr": lambda s: (repr(s), repr(s)[1:-1]),
}

#: secrets: any text of 8+ characters, with the characters that encodings change made likely
SECRETS = st.text(
    alphabet=st.one_of(
        st.sampled_from("+/=%&?# :\"'\\<>é€😀\t"),
        st.characters(blacklist_categories=("Cs", "Cc")),
    ),
    min_size=8,
    max_size=40,
).filter(lambda s: MASK not in s and s.strip())


def encoded(encoding: str, secret: str) -> str:
    return ENCODINGS[encoding](secret)[0]


def leaks(secret: str, text: str) -> list[str]:
    """The encodings of `secret` found in `text`."""
    return [name for name, encode in ENCODINGS.items() if encode(secret)[1] in text]


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(ENCODINGS)))
def test_redact_removes_every_encoding(secret, encoding):
    redactor = Redactor()
    redactor.add(secret)
    clean = redactor.redact(f"request failed: {encoded(encoding, secret)} (see above)")
    assert not leaks(secret, clean), (encoding, clean)
    assert MASK in clean


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), secret=SECRETS)
def test_redact_leaves_text_without_the_secret_alone(text, secret):
    redactor = Redactor()
    redactor.add(secret)
    if not leaks(secret, text) and "%" not in text:
        assert redactor.redact(text) == text


@settings(max_examples=150, deadline=None)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(ENCODINGS)))
def test_the_rendered_log_record_never_holds_the_secret(secret, encoding):
    """Message, %-args, exception text and extra attributes (telemetry properties), as the
    CLI's handler renders them."""
    redactor = register_redactor(Redactor())
    redactor.add(secret)
    text = encoded(encoding, secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s detail=%(detail)s"))
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger(f"test.redaction.{encoding}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"driver said: {text}")
        except RuntimeError:
            logger.exception("request %s failed", text, extra={"detail": text})
    finally:
        logger.removeHandler(handler)
    rendered = stream.getvalue()
    assert "driver said: " in rendered and "RuntimeError" in rendered
    assert not leaks(secret, rendered), (encoding, rendered)


# ------------------------------------------------------------------------------ the job path


class QuotingDriverBuilder(SourceBuilder):
    """A source whose driver fails with a message quoting the secret in the encoding the test
    chose (as a driver quoting its connection URL does). Registered for these tests only."""

    source_type = "quoting_driver"
    required_keys = ("api_key",)
    encoding: ClassVar[str] = "plain"

    def describe(self, secrets: dict[str, Any]) -> str:
        secret = secrets["api_key"].reveal()
        raise ConnectionRefusedError(
            f"connect to {encoded(self.encoding, secret)} refused\nsecond line"
        )

    def build_resource(self, job, secrets, options):  # never reached
        raise AssertionError

    def check_connection(self, job, secrets):  # never reached
        raise AssertionError


@pytest.fixture
def quoting_source(monkeypatch):
    monkeypatch.setitem(REGISTRY, "quoting_driver", f"{__name__}:QuotingDriverBuilder")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(secret=SECRETS, encoding=st.sampled_from(sorted(ENCODINGS)))
def test_a_job_error_its_log_and_its_audit_row_never_hold_the_secret(
    quoting_source, file_lake, monkeypatch, secret, encoding
):
    monkeypatch.setattr(QuotingDriverBuilder, "encoding", encoding)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the failure's traceback is logged at DEBUG
    try:
        resolver = SecretResolver([StaticSecrets({"leaky": {"api_key": secret}})])
        register_redactor(resolver.redactor)
        job = JobConfig("001", True, "quoting_driver", "leaky", "items", "FULL")
        task = {"run_id": f"r-{encoding}", "job": job.to_dict(), "destination": file_lake}
        result = run_task(task, resolver=resolver)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert result["status"] == "FAILED" and result["retriable"] is True
    assert result["error"].startswith("source 'leaky': ConnectionRefusedError: connect to ")
    summary = write_audit_json(
        {"run_id": task["run_id"], "destination": file_lake, "results": [result]}
    )
    audit = Path(summary["audit_path"]).read_text(encoding="utf-8")
    log_text = stream.getvalue()
    assert "Traceback" in log_text and "job 001 failed" in log_text
    for where, text in (("error", result["error"]), ("log", log_text), ("audit", audit)):
        assert not leaks(secret, text), (where, encoding, text)
