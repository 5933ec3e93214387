"""The lake's path grammar has one owner (`ingest.lake.layout`): what it builds it parses back,
and no other module spells a piece of it."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.lake import layout

ROOT = Path(__file__).resolve().parents[2]
#: string pieces of the grammar that only layout.py may hold in code (docstrings may say them)
GRAMMAR = (
    "_dlt_loads",
    "_dlt_version",
    "_dlt_pipeline_state",
    "_delta_log",
    ".jsonl",
    "metadata/",
    "%Y/%m/%d",
    ".commits.json",
    ".base",
)

names = st.text(st.sampled_from("abcdefghij_0123456789"), min_size=1, max_size=20).filter(
    lambda n: not n.startswith("_") and not n.endswith("_")
)
load_ids = st.builds(
    lambda seconds, fraction: f"{seconds}.{fraction}",
    st.integers(0, 4_000_000_000),
    st.integers(0, 9_999_999).map(lambda n: f"{n:07d}"),
)


@given(schema=names, load_id=load_ids)
def test_a_marker_name_parses_back(schema, load_id):
    assert layout.parse_marker_name(layout.marker_name(schema, load_id)) == (schema, load_id)


@given(load_id=load_ids, file_id=st.text("0123456789abcdef", min_size=1, max_size=10))
def test_a_data_file_names_its_load_and_its_date_folder(load_id, file_id):
    folder = layout.date_folder(load_id)
    path = f"src/orders/{folder}/{load_id}.{file_id}.parquet"
    assert layout.load_id_of(path) == load_id
    day = layout.load_day(load_id)
    assert folder == f"{day:%Y}/{day:%m}/{day:%d}"
    assert layout.is_load_file(path)
    assert not layout.is_load_file(f"src/orders/{folder}/x{load_id}.{file_id}.parquet")


def test_other_names_are_not_read_as_the_lake_s():
    assert layout.parse_marker_name("notes.txt") is None
    assert layout.parse_version_name("orders__1.5__abc.jsonl") == ("orders", 1.5)
    assert layout.parse_version_name("orders__x__abc.jsonl") is None
    assert layout.parse_state_name("p__1764288000.1__h.jsonl") == ("p", "1764288000.1")
    assert not layout.is_load_file("src/orders/2025/11/28/my-notes.parquet")
    assert layout.audit_file_day("metadata/audit_20261207.csv") == dt.date(2026, 12, 7)
    assert layout.audit_file_day("metadata/audit_20261340.csv") is None
    assert layout.audit_file_name(dt.date(2026, 12, 7)) == "audit_20261207.csv"
    assert layout.base_file_name("1.5", 3) == "1.5.base0003.parquet"
    assert layout.table_pattern("erp", "orders") == (
        "erp/orders/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.parquet"
    )


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module's code that are not prose (docstrings left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and not any(c.isspace() for c in node.value)  # prose (a help text) may name a path
    ]


@pytest.mark.parametrize("piece", GRAMMAR)
def test_no_module_but_layout_spells_the_grammar(piece):
    spelled = {
        str(path.relative_to(ROOT)): [line for line, text in _code_strings(path) if piece in text]
        for path in sorted((ROOT / "ingest").rglob("*.py"))
        if path.name != "layout.py"
    }
    assert {k: v for k, v in spelled.items() if v} == {}, f"use ingest.lake.layout for {piece!r}"
    assert piece in (ROOT / "ingest/lake/layout.py").read_text(encoding="utf-8")
