"""Request bodies, CLI arguments and backfill bounds (issue 15, class 5), property-based: any
body or bound ends as a valid request or a RequestError (HTTP 400 / exit 2) naming the field,
never another exception; a valid backfill range is two bounds of one kind, from before to."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.checks.backfill import check_bounds, parse_bound
from ingest.cli import main
from ingest.errors import RequestError
from ingest.run_request import parse_body

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
KEYS = st.sampled_from(["jobs", "sources", "full_refresh", "backfill", "job", "from", "to"])
REQUEST_LIKE = st.dictionaries(KEYS, JSON | st.dictionaries(KEYS, JSON), max_size=4)
BOUNDS = st.one_of(
    st.integers(),
    st.text(max_size=30),
    st.sampled_from(["NaN", "Infinity", "yesterday", "20240201", "2024-01-01", "2024-02-30",
                     "2024-01-01T00:00:00Z", "2024-01-01T00:00:00+05:00", "-1", "1e5", "1" * 60]),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)  # fmt: skip


def outcome(body: bytes) -> dict | str:
    try:
        return parse_body(body)
    except RequestError as exc:
        message = str(exc)
        assert message and len(message) < 1500
        return message


@settings(max_examples=300, deadline=None)
@given(REQUEST_LIKE | JSON)
def test_any_json_body_is_a_request_or_a_400(data):
    result = outcome(json.dumps(data).encode())
    if isinstance(result, dict):
        assert set(result) in ({"jobs", "sources", "full_refresh"}, {"backfill"})
        if "backfill" not in result and isinstance(data, dict):
            for key in ("jobs", "sources"):
                if key in data:  # a selection given is never empty (empty means everything)
                    assert result[key]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_400(body):
    outcome(body)


@settings(max_examples=400, deadline=None)
@given(start=BOUNDS, end=st.none() | BOUNDS)
def test_backfill_bounds_are_one_kind_and_ordered_or_refused(start, end):
    try:
        start_text, end_text = check_bounds(start, end)
    except RequestError as exc:
        assert "'from'" in str(exc) or "'to'" in str(exc)
        assert len(str(exc)) < 400
        return
    start_kind, low, _ = parse_bound(start_text)
    if end_text is not None:
        end_kind, high, _ = parse_bound(end_text, "to")
        assert start_kind == end_kind and low < high


def test_cli_arguments_go_through_the_same_schema(capsys):
    base = ["--config", "nope.csv"]
    assert main(["run", "--job", "", *base]) == 2
    assert "--job: '' is not a job id" in capsys.readouterr().err
    assert main(["run", "--workers", "0", *base]) == 2
    assert "--workers: must be at least 1" in capsys.readouterr().err
    assert main(["run", "--run-id", "a/../b", *base]) == 2
    assert "--run-id: 'a/../b' is not a run id" in capsys.readouterr().err
    assert main(["backfill", "--job", "o1", "--from", "NaN", *base]) == 2
    assert "--from 'NaN' is not a watermark" in capsys.readouterr().err
    code = main(["backfill", "--job", "o1", "--from", "20240201", "--to", "2024-01-01", *base])
    assert code == 2 and "write both bounds the same way" in capsys.readouterr().err
