"""Source capabilities live on the builders: a new source type is one module and one registry
line, and a builder that forgets a capability fails here, not in production."""

from __future__ import annotations

import ast
import dataclasses
import tomllib
from pathlib import Path

import pytest

from ingest.sources import REGISTRY, builder_class, capabilities, source_types
from ingest.sources.base import Capabilities, SourceBuilder

ROOT = Path(__file__).resolve().parents[2]


def missing_capabilities(cls: type) -> list[str]:
    """What a registered builder class fails to declare (empty: complete)."""
    problems = []
    if not (isinstance(cls, type) and issubclass(cls, SourceBuilder)):
        return ["not a SourceBuilder"]
    declared = cls.__dict__.get("capabilities")
    if not isinstance(declared, Capabilities):
        problems.append("capabilities (its own Capabilities, not a base class's)")
    if "source_type" not in cls.__dict__:
        problems.append("source_type")
    return problems


@pytest.mark.parametrize("source_type", sorted(REGISTRY))
def test_every_registered_builder_declares_every_capability(source_type):
    cls = builder_class(source_type)
    assert missing_capabilities(cls) == []
    assert cls.source_type == source_type


def test_the_check_fails_on_a_builder_that_forgot_them():
    class Forgetful(builder_class("postgresql")):  # type: ignore[misc,valid-type]
        source_type = "snowflake"

    assert missing_capabilities(Forgetful) == [
        "capabilities (its own Capabilities, not a base class's)"
    ]
    assert missing_capabilities(dict) == ["not a SourceBuilder"]


def test_a_capability_has_no_default_to_forget():
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(Capabilities)
    )


def test_what_the_capabilities_promise_exists():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    seen_aliases: dict[str, str] = {}
    for name in REGISTRY:
        can = capabilities(name)
        assert can.fast_path_extra is None or can.fast_path_extra in extras
        assert can.row_count or can.no_count_reason, name
        for alias in can.aliases:
            assert alias not in REGISTRY and alias not in seen_aliases, alias
            seen_aliases[alias] = name
    types = source_types()
    assert dict(types.aliases) == seen_aliases
    assert types.names == tuple(REGISTRY)
    for extension in types.extensions:
        assert isinstance(extension.columns, tuple) and callable(extension.apply)
    assert len(types.extensions) == sum(
        1 for n in REGISTRY if capabilities(n).config_extension is not None
    )


def test_no_engine_module_asks_a_source_type_by_name():
    """Outside ingest/sources/, a source type's name is never compared with: its capabilities
    say what it can do."""
    found = []
    for path in sorted((ROOT / "ingest").rglob("*.py")):
        if "sources" in path.relative_to(ROOT).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                values = [node.left, *node.comparators]
                for value in values:
                    elements = value.elts if isinstance(value, ast.Tuple | ast.Set) else [value]
                    for element in elements:
                        if isinstance(element, ast.Constant) and element.value in REGISTRY:
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
