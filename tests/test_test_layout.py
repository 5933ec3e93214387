"""The shape of the tests, checked: a test module imports no other test module. Helpers two
test modules share live in `tests/fixtures/` (pytest fixtures in a conftest.py), so running or
moving one test module never depends on another's tests.

Imports are read from the source (AST): an import inside a function counts, a docstring that
shows a command does not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def package_name(path: Path) -> str:
    """The package a relative import in `path` starts from (a package's own, for __init__)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def every_file_of_the_tests() -> list[Path]:
    """Every module under tests/ (test modules, helpers, fixtures, conftest.py)."""
    return sorted(TESTS.rglob("*.py"))


def names_of_test_modules() -> set[str]:
    """The test modules pytest collects: tests/**/test_*.py, by module name."""
    return {
        module_name(path) for path in every_file_of_the_tests() if path.name.startswith("test_")
    }


def imported_test_modules(source: str, package: str, tests: set[str]) -> list[tuple[int, str]]:
    """(line, module) of each import in `source` (a module of `package`) that names one of
    `tests`: `import tests.a.test_x`, `from tests.a.test_x import y`, `from tests.a import
    test_x`, and the relative forms, at the top or inside a function."""
    parts = package.split(".")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*above, base] if base else above)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [(node.lineno, name) for name in names if name in tests]
    return found


def test_the_check_finds_an_import_of_a_test_module():
    tests = {"tests.app.test_function_app", "tests.job.test_split"}

    def found(source: str, package: str = "tests.job") -> list[tuple[int, str]]:
        return imported_test_modules(source, package, tests)

    assert found("from tests.app.test_function_app import activity\n") == [
        (1, "tests.app.test_function_app")
    ]
    assert found("import tests.job.test_split\n") == [(1, "tests.job.test_split")]
    assert found("from tests.app import test_function_app\n") == [
        (1, "tests.app.test_function_app")
    ]
    # inside a function, and relative to the importing module's package
    assert found("def f():\n    from .test_split import task\n") == [(2, "tests.job.test_split")]
    assert found("from ..app.test_function_app import job_row\n") == [
        (1, "tests.app.test_function_app")
    ]
    assert found("from . import test_function_app\n", package="tests.app") == [
        (1, "tests.app.test_function_app")
    ]
    # a shared helper, a module that only starts like a test module, a command in a docstring
    assert found("from tests.fixtures.app import activity\n") == []
    assert found("from tests.app.test_function_app_extra import x\n") == []
    assert found('"""`python -c "from tests.job.test_split import task"`"""\n') == []


def test_the_check_sees_every_test_module():
    tests = names_of_test_modules()
    assert len(tests) > 50
    assert "tests.test_test_layout" in tests and "tests.app.test_function_app" in tests
    assert not any(name.startswith("tests.fixtures.") for name in tests)


def test_no_test_module_is_imported_by_another_module():
    tests = names_of_test_modules()
    found = {
        str(path.relative_to(ROOT)): imports
        for path in every_file_of_the_tests()
        if (
            imports := imported_test_modules(
                path.read_text(encoding="utf-8"), package_name(path), tests
            )
        )
    }
    assert found == {}, "move the shared helper to tests/fixtures/ (a pytest fixture: conftest.py)"
