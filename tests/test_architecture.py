"""The shape of the code, checked: no import cycles, settings read in one place, local imports
only with a reason, entry points that stay light.

The import graph is read from the source (AST), so a cycle hidden behind a function-level or
TYPE_CHECKING import is still a cycle here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ingest"
#: modules that run at start-up of the function app or the CLI: they import the engine
#: inside the functions that use it (see ingest/__init__.py)
ENTRY_POINTS = ("ingest/cli.py", "ingest/commands/", "ingest/app/", "function_app.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + [ROOT / "function_app.py"]


MODULES = {module_name(path): path for path in project_files()}


def imported_modules(node: ast.AST, current: str) -> list[str]:
    """Project modules an import statement names: `from ingest.lake import ledger` is the
    module ingest.lake.ledger, `from ingest.lake import Destination` the package ingest.lake."""
    found = []
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = current.split(".")[: -node.level]
            base = ".".join([*package, base] if base else package)
        found = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    return [name for name in found if name in MODULES]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {
            target
            for node in ast.walk(tree)
            for target in imported_modules(node, name)
            if target != name
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40  # the whole package was read
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def environment_reads(path: Path) -> list[int]:
    """Lines that touch the process environment: os.environ, os.getenv, os.putenv."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ("environ", "getenv", "putenv") for alias in node.names):
                lines.append(node.lineno)
    return lines


def test_only_the_settings_module_reads_the_environment():
    readers = {
        str(path.relative_to(ROOT)): lines
        for path in project_files()
        if path != PACKAGE / "settings.py" and (lines := environment_reads(path))
    }
    assert readers == {}, "read settings through ingest.settings (Settings.from_env, read)"
    assert environment_reads(PACKAGE / "settings.py")  # the check sees a real reader


def local_imports_without_reason(path: Path) -> list[int]:
    """Function-level imports with no comment on their line or on the line above their
    block of imports."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    missing = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            first = node.lineno - 1
            while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                first -= 1  # the top of this block of imports
            block_has_reason = "#" in lines[first - 1] if first > 0 else False
            if "#" not in lines[node.lineno - 1] and not block_has_reason:
                missing.append(node.lineno)
    return missing


def test_every_local_import_says_why():
    unexplained = {
        str(path.relative_to(ROOT)): lines
        for path in project_files()
        if (lines := local_imports_without_reason(path))
    }
    assert unexplained == {}, "a function-level import needs a one-line reason (a comment)"


def test_engine_modules_import_the_project_at_the_top():
    """Only the entry points defer project imports (cold start); the engine has no cycle
    left to hide."""
    offenders = {}
    for name, path in MODULES.items():
        relative = str(path.relative_to(ROOT))
        if relative.startswith(ENTRY_POINTS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deferred = [
            node.lineno
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
            if isinstance(node, ast.Import | ast.ImportFrom) and imported_modules(node, name)
        ]
        if deferred:
            offenders[relative] = deferred
    assert offenders == {}


def test_entry_points_load_only_the_light_modules():
    """Importing the function app or building the CLI loads no engine module."""
    probe = (
        "import sys, json\n"
        "import function_app\n"
        "from ingest.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ingest'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(__import__("json").loads(out))
    light = {"ingest", "ingest.cli", "ingest.errors", "ingest.settings", "ingest.vocabulary"}
    light |= {"ingest.results", "ingest.views", "ingest.commands", "ingest.app"}
    engine = {
        m
        for m in loaded
        if m not in light and not m.startswith(("ingest.app.", "ingest.commands."))
    }
    assert engine == set()
