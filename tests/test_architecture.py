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


def packages_run(target: str, importer: str) -> list[str]:
    """The project modules that importing `target` from `importer` executes: the target and the
    `__init__` of each package above it (`ingest.config.validate` runs `ingest.config`'s
    `__init__` first), except the packages the importer is inside (already run)."""
    parts = target.split(".")
    chain = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    inside = {".".join(importer.split(".")[:n]) for n in range(1, importer.count(".") + 1)}
    return [m for m in chain if m in MODULES and m not in inside and m != importer]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {
            run
            for node in ast.walk(tree)
            for target in imported_modules(node, name)
            for run in packages_run(target, name)
        }
    return graph


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module importing `start` runs, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between the top-level packages and modules of ingest (ingest.lake, ...)."""

    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for name, targets in graph.items():
        packages.setdefault(top(name), set()).update(
            top(t) for t in targets if top(t) != top(name) and t != "ingest"
        )
    return packages


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


def test_no_cycle_between_packages():
    """ingest.config, ingest.lake, ... import each other one way only."""
    assert cycles(package_graph(import_graph())) == []


#: (importer package, what it must never run): the intended layering's "never" rules
NEVER = (
    # config is a leaf: source types extend validation from above, it never asks them
    ("ingest.config", "ingest.sources"),
    # checks run inside a job; planning (which tables, which ranges) sits above them
    ("ingest.checks", "ingest.plan"),
)


def test_the_never_rules_hold_through_package_inits():
    graph = import_graph()
    broken = {
        f"{name} -> {forbidden}"
        for name in graph
        for importer, forbidden in NEVER
        if name == importer or name.startswith(importer + ".")
        for reached in reaches(graph, name)
        if reached == forbidden or reached.startswith(forbidden + ".")
    }
    assert broken == set()


def test_the_graph_models_package_inits():
    """Importing a submodule runs its package's __init__ (and whatever that imports)."""
    assert packages_run("ingest.lake.commits", "ingest.job.run") == [
        "ingest.lake",
        "ingest.lake.commits",
    ]
    assert packages_run("ingest.config.model", "ingest.plan") == [
        "ingest.config",
        "ingest.config.model",
    ]
    assert packages_run("ingest.lake.commits", "ingest.lake.loads") == ["ingest.lake.commits"]
    graph = import_graph()
    assert "ingest.lake" in graph["ingest.job.run"]  # through `from ingest.lake.x import y`


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


ENVIRONMENT = ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv")


def environment_reads(source: str) -> list[int]:
    """Lines that touch the process environment (os.environ, os.getenv, ... under any alias of
    `os`), or read a setting around `Settings` (`ingest.settings`'s private `_read`)."""
    tree = ast.parse(source)
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT:
            if isinstance(node.value, ast.Name) and node.value.id in os_names:
                lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr in ("read", "_read"):
            if isinstance(node.value, ast.Name) and node.value.id == "settings":
                lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "ingest.settings"):
            names = ENVIRONMENT if node.module == "os" else ("read", "_read")
            if any(alias.name in names for alias in node.names):
                lines.append(node.lineno)
    return lines


def test_the_environment_check_sees_aliases_and_reads_around_settings():
    assert environment_reads("import os as _os\nx = _os.environ['A']\n") == [2]
    assert environment_reads("from os import environ as e\n") == [1]
    assert environment_reads("from ingest import settings\nsettings._read('X')\n") == [2]
    assert environment_reads("from ingest.settings import _read\n") == [1]
    assert environment_reads("import os\nos.path.join('a')\n") == []


def test_only_the_settings_module_reads_the_environment():
    readers = {
        str(path.relative_to(ROOT)): lines
        for path in project_files()
        if path != PACKAGE / "settings.py"
        and (lines := environment_reads(path.read_text(encoding="utf-8")))
    }
    assert readers == {}, "read settings through ingest.settings (Settings.from_env, accessors)"
    settings = (PACKAGE / "settings.py").read_text(encoding="utf-8")
    assert environment_reads(settings)  # the check sees a real reader


def function_import_blocks(source: str) -> list[tuple[str, list[int]]]:
    """Each block of imports inside a function (statements next to each other in one body,
    an import written over several lines counted whole): the line directly above its first
    statement (stripped; "" at the top of the file) and the line numbers of its imports."""
    lines = source.splitlines()
    blocks = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            for body in (getattr(node, name, None) for name in ("body", "orelse", "finalbody")):
                if not isinstance(body, list):
                    continue
                block: list[ast.stmt] = []
                for statement in [*body, None]:
                    if isinstance(statement, ast.Import | ast.ImportFrom):
                        block.append(statement)
                        continue
                    if block:
                        first = block[0].lineno - 1
                        above = lines[first - 1].strip() if first > 0 else ""
                        blocks.append((above, [b.lineno for b in block]))
                    block = []
    return blocks


def local_imports_without_reason(source: str) -> list[int]:
    """Function-level imports whose block of imports has no reason: a comment on a line of its
    own directly above the block (a trailing comment belongs to its own line)."""
    return [
        line
        for above, lines in function_import_blocks(source)
        if not above.startswith("#")
        for line in lines
    ]


def test_the_reason_check_wants_the_comment_above_the_block():
    def body(*lines: str) -> str:
        return "def f():\n" + "".join(f"    {line}\n" for line in lines)

    assert local_imports_without_reason(body("# cold start", "import a", "import b")) == []
    assert local_imports_without_reason(body("x = 1  # a reason for x", "import a")) == [3]
    assert local_imports_without_reason(body("import a  # trailing")) == [2]
    # an import over several lines is one statement of its block
    assert (
        local_imports_without_reason(body("# why", "from a import (", "  b,", ")", "import c"))
        == []
    )
    assert local_imports_without_reason(body("x = 1", "", "import a")) == [4]


def test_every_local_import_says_why():
    unexplained = {
        str(path.relative_to(ROOT)): lines
        for path in project_files()
        if (lines := local_imports_without_reason(path.read_text(encoding="utf-8")))
    }
    assert unexplained == {}, "a function-level import needs a one-line reason (a comment)"


def repeated_reasons(source: str) -> dict[str, int]:
    """Reasons (the comment above a function-level block of imports) a module gives more than
    once: each is a copy of a lazy import that one accessor in the module should hold."""
    counts: dict[str, int] = {}
    for above, _ in function_import_blocks(source):
        if above.startswith("#"):
            counts[above] = counts.get(above, 0) + 1
    return {reason: n for reason, n in counts.items() if n > 1}


def test_the_repeated_reason_check_counts_blocks_not_imports():
    def module(*functions: str) -> str:
        return "".join(
            f"def f{i}():\n    # cold start\n    {body}\n" for i, body in enumerate(functions)
        )

    assert repeated_reasons(module("import a\n    import b")) == {}
    assert repeated_reasons(module("import a", "from b import c")) == {"# cold start": 2}


def test_a_module_gives_each_reason_for_a_lazy_import_once():
    """One lazy accessor per module (`_engine()` in the entry points, `_azure()`, ...), not the
    same import and its reason copied into every function that needs it."""
    found = {
        str(path.relative_to(ROOT)): repeated
        for path in project_files()
        if (repeated := repeated_reasons(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "fold the copies into one accessor function in the module"


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
    light |= {"ingest.model", "ingest.model.result", "ingest.model.split", "ingest.model.summary"}
    light |= {"ingest.views", "ingest.commands", "ingest.app"}
    engine = {
        m
        for m in loaded
        if m not in light and not m.startswith(("ingest.app.", "ingest.commands."))
    }
    assert engine == set()


def repeated_lazy_imports(source: str) -> dict[str, int]:
    """Libraries (outside the project) a module imports inside more than one function: each
    should have one accessor in the module (`def _dlt() -> ModuleType:` with the reason once),
    not a copy of the import and its reason in every function. Counted: functions."""
    tree = ast.parse(source)
    seen: dict[int, tuple[int, str]] = {}  # import -> (innermost function, library)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if not name.startswith("ingest"):
                    seen[id(node)] = (id(function), name.split(".")[0])
    counts: dict[str, int] = {}
    for library in {pair for pair in seen.values()}:
        counts[library[1]] = counts.get(library[1], 0) + 1
    return {library: n for library, n in counts.items() if n > 1}


def test_the_repetition_check_counts_lazy_imports_of_a_library():
    source = "def f():\n    import dlt\n\ndef g():\n    from dlt.common import x\n"
    assert repeated_lazy_imports(source) == {"dlt": 2}
    accessor = "def _dlt():\n    import dlt\n    from dlt.common import x\n"
    assert repeated_lazy_imports(accessor) == {}
    assert repeated_lazy_imports("def f():\n    import dlt\n    from ingest import a\n") == {}


def test_a_library_is_imported_lazily_in_one_place_per_module():
    found = {
        str(path.relative_to(ROOT)): repeated
        for path in project_files()
        if (repeated := repeated_lazy_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "import a library lazily through one accessor per module"
