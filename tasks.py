#!/usr/bin/env python3
"""Project tasks: one entry point for the README's commands.

    python3 tasks.py demo [ARGS...]      run the local demo (no servers, npm or cloud needed)
    python3 tasks.py test [PYTEST ARGS]  set up everything, lint, run the test suite
    python3 tasks.py services            start/check PostgreSQL, MariaDB and Azurite
    python3 tasks.py bench [ARGS...]     run bench/run.py (--warm: bench/warm.py)
    python3 tasks.py lock [--upgrade]    regenerate the locks (requirements*.txt) with uv

Standard library only (Python 3.11+), so it runs on a fresh machine before any venv exists.
`python3 tasks.py COMMAND --help` describes each command.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: requirements-infra.txt (checkov, pycep-parser) pins packages that clash with the app's
#: (packaging<24, python-dateutil<3), so it gets a venv of its own; tests/test_infra.py uses it.
INFRA_VENV = ROOT / ".venv-infra"
NODE_MODULES = ROOT / "node_modules"
AZURITE_LOCATION = ROOT / ".azurite"
#: Where requirements*.txt are read from (override only for testing this script).
REQUIREMENTS_DIR = Path(os.environ.get("TASKS_REQUIREMENTS_DIR") or ROOT)
#: The locks. requirements.txt is what the function app deploys (Flex Consumption's remote
#: build runs `pip install -r requirements.txt`); requirements-dev.txt is a superset (both
#: extras + test tools, same versions); requirements-infra.txt is .venv-infra's.
RUNTIME_LOCK, DEV_LOCK, INFRA_LOCK = (
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-infra.txt",
)
#: pyproject.toml extras that the deployed lock includes (README "Dependencies": connectorx is
#: deployed, deltalake is not; `lock --deploy-extras fast,delta` deploys both).
DEPLOYED_EXTRAS = ("fast",)
#: Oldest Python the locks are resolved for; `--universal` adds markers for newer ones (3.12).
LOCK_PYTHON = "3.11"
NPM_STAMP = NODE_MODULES / ".tasks-package-hash"

EXIT_USAGE = 2
#: pytest-xdist's options for the whole suite (see cmd_test)
PARALLEL = ["-n", "2", "--dist", "loadfile"]
EXIT_MISSING = 3
LINT_FIX = "run: .venv/bin/ruff format . && .venv/bin/ruff check --fix ."

TEST_ENV = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
}

HELP = {
    "demo": """\
usage: python3 tasks.py demo [ARGS...]

Runs the end-to-end local demo: `.venv/bin/dlt-ingest demo ARGS...`.
Creates .venv when missing, installs the lock requirements.txt into it whenever that file
changed since the last install, and this project (editable: the `dlt-ingest` command).
Needs no database server, npm or Azure.
Exits with the demo's exit code.  (`python3 tasks.py demo -- --help` shows the demo's own help.)
""",
    "test": """\
usage: python3 tasks.py test [--skip-lint] [--] [PYTEST ARGS...]

0. the system packages the tests need (unixODBC + FreeTDS, Node.js + npm, python3-venv,
   chromium for the report's browser test): installed with apt-get when missing and run as
   root; otherwise it prints the apt-get command and exits 3;
1. creates/updates .venv with requirements.txt + requirements-dev.txt, and .venv-infra with
   requirements-infra.txt (checkov's pins clash with the app's), reinstalling only when a
   file changed;
2. `npm ci` into ./node_modules (Azurite, pinned in package.json/package-lock.json)
   when missing or outdated;
3. makes sure PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and Azurite
   (127.0.0.1:10000-10002, data in .azurite/) are running, starting them when installed;
   when one is not installed, prints what to install and exits 3;
4. `ruff format --check .` and `ruff check .` (exit 1 on findings);
5. `.venv/bin/python -m pytest PYTEST ARGS...`, exiting with pytest's exit code.

The test run gets RUNTIME__DLTHUB_TELEMETRY=false, APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true,
OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=otel and INGEST_TEST_AZURITE_CONNECTION_STRING.
  --skip-lint   skip step 4 (local iterations only; CI always lints)
Examples: python3 tasks.py test -q tests/test_config.py
          python3 tasks.py test -k incremental -x
""",
    "services": """\
usage: python3 tasks.py services

Starts PostgreSQL, MariaDB and Azurite when installed but not running (installing Azurite
with npm when needed), then prints each one's status and Azurite's connection string.
Exits 3 (with what to install) when a service cannot be started.  Azurite keeps running in
the background afterwards; its data and log are in .azurite/.
""",
    "bench": """\
usage: python3 tasks.py bench [--warm] [ARGS...]

Runs `.venv/bin/python bench/run.py ARGS...` (after the same venv setup as `test`) and exits
with its exit code.  (`python3 tasks.py bench -- --help` shows the benchmark's own help.)

--warm (first): runs `.venv/bin/python bench/warm.py ARGS...` instead, the one-process warm
benchmark (file:// and Azurite lakes), after setting up .venv and starting PostgreSQL and
Azurite like `services`.  (`python3 tasks.py bench --warm --help` shows its help.)
""",
    "lock": """\
usage: python3 tasks.py lock [--upgrade] [--deploy-extras fast[,delta]]

Regenerates the three locks from the direct requirements with `uv pip compile --universal
--generate-hashes` (uv comes from requirements-dev.txt; .venv is set up first if needed):
  requirements.txt        pyproject.toml's dependencies + the deployed extras (default: fast)
  requirements-dev.txt    pyproject.toml + every extra + requirements-dev.in, pinned to the
                          versions of requirements.txt (the tests run the fast path and Delta)
  requirements-infra.txt  requirements-infra.in (checkov, pycep-parser)
Without --upgrade, versions already in a lock are kept unless a requirement changed;
--upgrade moves every package to the newest version the requirements allow.
Needs the network to PyPI. Commit the changed requirements*.txt; the next `test`/`demo`
reinstalls the venvs from them.
""",
}


# --------------------------------------------------------------------------- output


def say(message: str) -> None:
    print(f"tasks.py: {message}", file=sys.stderr, flush=True)


class TaskError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- helpers


def venv_bin(name: str, venv: Path = VENV) -> Path:
    if os.name == "nt":  # pragma: no cover - the project targets Linux/macOS
        return venv / "Scripts" / (name + ".exe")
    return venv / "bin" / name


def sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Serialise setup steps between concurrent `tasks.py` runs on this checkout."""
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"tasks-{key}-{name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(cmd: Sequence[str | os.PathLike[str]], **kwargs) -> int:
    try:
        return subprocess.run([os.fspath(c) for c in cmd], check=False, **kwargs).returncode
    except FileNotFoundError as exc:
        raise TaskError(f"cannot run {cmd[0]}: {exc}", EXIT_MISSING) from exc


# --------------------------------------------------------------------------- venv


def ensure_venv(requirement_names: Sequence[str], venv: Path = VENV, project: bool = False) -> None:
    """Create the venv if needed; pip-install the locks when one changed (pip checks every
    package against the lock's hashes); with `project`, also install this repository in
    editable mode, which provides the `dlt-ingest` command in the venv's bin/."""
    stamp_path = venv / ".tasks-requirements.json"
    with file_lock(venv.name):
        python = venv_bin("python", venv)
        if not python.exists():
            say(f"creating {venv.relative_to(ROOT)} with {sys.executable}")
            code = run([sys.executable, "-m", "venv", venv])
            if code != 0 or not python.exists():
                raise TaskError(
                    "could not create the virtual environment; on Debian/Ubuntu: "
                    "apt-get install python3-venv",
                    EXIT_MISSING,
                )
        try:
            stamp = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            stamp = {}
        interpreter = venv_python_version(venv)
        if stamp.get("python") != interpreter:
            # venv recreated/upgraded: reinstall everything
            stamp = {"python": interpreter}
        hashes = stamp.setdefault("files", {})

        files = [REQUIREMENTS_DIR / name for name in requirement_names]
        present = [f for f in files if f.exists()]
        for missing in sorted(set(files) - set(present)):
            say(f"warning: {missing} not found; its dependencies are not installed")
        changed = [f for f in present if hashes.get(f.name) != sha256_of(f)]
        pyproject = ROOT / "pyproject.toml"
        project_changed = project and hashes.get("project") != sha256_of(pyproject)
        if not changed and not project_changed:
            return
        quiet = ["--progress-bar", "off"] if os.environ.get("CI") else []
        if changed:
            # All files in one pip call, so the resolver honours every pin together. The
            # locks carry hashes, so pip runs in hash-checking mode: nothing unpinned or
            # altered gets in, and nothing is re-resolved.
            say(
                "installing " + ", ".join(f.name for f in present) + f" into {venv.name}"
                f" ({', '.join(f.name for f in changed)} changed)"
            )
            cmd: list[str | os.PathLike[str]] = [python, "-m", "pip", "install", *quiet]
            for f in present:
                cmd += ["-r", f]
            code = run(cmd, cwd=ROOT)
            if code != 0:
                raise TaskError(f"pip install failed (exit {code}); see the output above", code)
            for f in present:
                hashes[f.name] = sha256_of(f)
        if project:
            # Editable: the command runs this checkout's code. --no-deps: the lock has them;
            # --no-build-isolation: the lock's setuptools builds it, no download needed.
            say(f"installing this project (the dlt-ingest command) into {venv.name}")
            code = run(
                [python, "-m", "pip", "install", *quiet, "--no-deps", "--no-build-isolation"]
                + ["-e", ROOT],
                cwd=ROOT,
            )
            if code != 0:
                raise TaskError(f"pip install -e . failed (exit {code})", code)
            hashes["project"] = sha256_of(pyproject)
        stamp_path.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")


def venv_python_version(venv: Path) -> str:
    """The venv interpreter's version, from pyvenv.cfg (not the Python running tasks.py)."""
    try:
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info"):
                return value.strip()
    except OSError:
        pass
    return "unknown"


def ensure_test_venvs() -> None:
    ensure_venv([DEV_LOCK], project=True)
    if (REQUIREMENTS_DIR / INFRA_LOCK).exists():
        ensure_venv([INFRA_LOCK], INFRA_VENV)


# --------------------------------------------------------------------------- npm


def ensure_node_modules() -> None:
    """`npm ci` (or `npm install` without a lock file) when node_modules is missing/outdated."""
    package_json = ROOT / "package.json"
    lock = ROOT / "package-lock.json"
    if not package_json.exists():
        raise TaskError("package.json is missing from the repository", EXIT_MISSING)
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise TaskError(
            "node/npm not found: install Node.js 20 and npm (Debian: apt-get install nodejs npm)",
            EXIT_MISSING,
        )
    with file_lock("npm"):
        wanted = sha256_of(package_json, lock)
        azurite = NODE_MODULES / ".bin" / "azurite"
        try:
            current = NPM_STAMP.read_text().strip()
        except OSError:
            current = ""
        if current == wanted and azurite.exists():
            return
        verb = "ci" if lock.exists() else "install"
        say(f"npm {verb}: installing Azurite into node_modules/")
        code = run([npm, verb, "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT)
        if code != 0:
            raise TaskError(f"npm {verb} failed (exit {code}); see the output above", code)
        NODE_MODULES.mkdir(exist_ok=True)
        NPM_STAMP.write_text(wanted + "\n")


# --------------------------------------------------------------------------- services


def load_services():
    """Import tests/services.py by path (the venv may not exist; tests/ is not a package)."""
    path = ROOT / "tests" / "services.py"
    spec = importlib.util.spec_from_file_location("_ingest_test_services", path)
    if spec is None or spec.loader is None:
        raise TaskError(f"cannot load {path}", EXIT_MISSING)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ensure_services() -> str:
    """Start/check every service; return Azurite's connection string."""
    services = load_services()
    try:
        info = services.ensure_all(AZURITE_LOCATION)
    except services.MissingService as exc:
        problems = getattr(exc, "problems", [exc])
        for problem in problems:
            say(str(problem))
        raise TaskError(
            "cannot run the tests until these are installed/started:\n"
            + "\n".join(f"  {p.service}: {p.instruction}" for p in problems),
            EXIT_MISSING,
        ) from None
    return info["azurite_connection_string"]


# --------------------------------------------------------------------------- lint


def lint() -> None:
    ruff = venv_bin("ruff")
    if not ruff.exists():
        raise TaskError(
            ".venv/bin/ruff not found (ruff belongs in requirements-dev.txt)",
            EXIT_MISSING,
        )
    # Side virtualenvs (e.g. .venv-infra/) are not project code; .venv/ ruff skips already.
    exclude = ["--extend-exclude", ".venv-*"]
    fmt = run([ruff, "format", "--check", *exclude, "."], cwd=ROOT)
    check = run([ruff, "check", *exclude, "."], cwd=ROOT)
    if fmt != 0 or check != 0:
        raise TaskError(f"lint failed; {LINT_FIX}", 1)
    mypy = venv_bin("mypy")
    if not mypy.exists():
        raise TaskError(".venv/bin/mypy not found (mypy belongs in requirements-dev.txt)", 3)
    if run([mypy], cwd=ROOT) != 0:  # pyproject.toml [tool.mypy]: ingest/, strict on lake/
        raise TaskError("type check failed: fix the errors mypy printed above", 1)


# --------------------------------------------------------------------------- commands


def split_options(args: list[str], known: set[str]) -> tuple[set[str], list[str]]:
    """Leading tasks.py options, then everything else (after an optional `--`) verbatim."""
    options: set[str] = set()
    index = 0
    while index < len(args) and args[index] in known:
        options.add(args[index])
        index += 1
    rest = args[index:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return options, rest


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def cmd_demo(args: list[str]) -> int:
    _, rest = split_options(args, set())
    ensure_venv([RUNTIME_LOCK], project=True)
    command = venv_bin("dlt-ingest")
    if not command.exists():
        raise TaskError(f"{command} is missing after installing the project", EXIT_MISSING)
    env = child_env()
    env.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    return run([command, "demo", *rest], cwd=ROOT, env=env)


def _libodbc_loads() -> bool:
    if sys.platform != "linux":
        return True
    try:
        ctypes.CDLL("libodbc.so.2")
    except OSError:
        return False
    return True


def _venv_works() -> bool:
    return importlib.util.find_spec("ensurepip") is not None


#: (what needs it, is it there, the Debian packages that provide it). Database servers are
#: not here: tests/services.py starts them and says what to install when one is missing.
SYSTEM_NEEDS: tuple[tuple[str, Callable[[], bool], tuple[str, ...]], ...] = (
    ("unixODBC for pyodbc (SQL Server tests)", _libodbc_loads, ("unixodbc", "tdsodbc")),
    (
        "Node.js 20 + npm for Azurite",
        lambda: bool(shutil.which("node") and shutil.which("npm")),
        ("nodejs", "npm"),
    ),
    ("python3-venv to create .venv", _venv_works, ("python3-venv",)),
    (
        "headless Chromium for the HTML report's browser test",
        lambda: bool(shutil.which("chromium")),
        ("chromium",),
    ),
)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_system_packages(needs=SYSTEM_NEEDS, root: bool | None = None) -> list[str]:
    """Install the missing system packages with apt-get when running as root (as CI does);
    otherwise stop with the exact command to run. Returns the packages installed."""
    missing = [(what, packages) for what, present, packages in needs if not present()]
    if not missing:
        return []
    packages = [p for _, group in missing for p in group]
    what = "; ".join(w for w, _ in missing)
    command = "apt-get install -y --no-install-recommends " + " ".join(packages)
    if not (is_root() if root is None else root) or not shutil.which("apt-get"):
        raise TaskError(
            f"missing system packages ({what}); install them as root, then run this again:\n"
            f"  sudo {command}",
            EXIT_MISSING,
        )
    say(f"installing system packages ({what}): {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], command.replace("-y", "-y -qq").split()):
        code = run(cmd, env=env, stdin=subprocess.DEVNULL)
        if code != 0:
            raise TaskError(f"{' '.join(cmd)} failed (exit {code}); see the output above", code)
    still = [w for w, present, _ in needs if not present()]
    if still:
        raise TaskError(f"still missing after apt-get install: {'; '.join(still)}", EXIT_MISSING)
    return packages


def cmd_test(args: list[str]) -> int:
    options, rest = split_options(args, {"--skip-lint"})
    ensure_system_packages()
    ensure_test_venvs()
    ensure_node_modules()
    connection_string = ensure_services()
    if "--skip-lint" in options:
        say("skipping ruff (--skip-lint)")
    else:
        lint()
    env = child_env({**TEST_ENV, "INGEST_TEST_AZURITE_CONNECTION_STRING": connection_string})
    # the suite's files over two worker processes (pytest-xdist; a file's tests stay together),
    # unless the arguments choose (`-n 0` runs in one process)
    parallel = [] if any(a == "-n" or a.startswith("-n") for a in rest) else PARALLEL
    code = run([venv_bin("python"), "-m", "pytest", *parallel, *rest], cwd=ROOT, env=env)
    if code == 5:
        say("pytest collected no tests (exit 5)")
    return code


def cmd_services(args: list[str]) -> int:
    if args:
        raise TaskError(f"unexpected arguments: {' '.join(args)}", EXIT_USAGE)
    ensure_node_modules()
    connection_string = ensure_services()
    for name, up in load_services().status().items():
        print(f"{name:<28} {'up' if up else 'DOWN'}")
    print(f"Azurite data and log: {AZURITE_LOCATION.relative_to(ROOT)}/")
    print(f"INGEST_TEST_AZURITE_CONNECTION_STRING={connection_string}")
    return 0


def cmd_bench(args: list[str]) -> int:
    options, rest = split_options(args, {"--warm"})
    if "--warm" in options:
        return cmd_bench_warm(rest)
    ensure_test_venvs()
    script = ROOT / "bench" / "run.py"
    if not script.exists():
        raise TaskError("bench/run.py does not exist", EXIT_USAGE)
    env = child_env({"RUNTIME__DLTHUB_TELEMETRY": "false"})
    return run([venv_bin("python"), script, *rest], cwd=ROOT, env=env)


def cmd_bench_warm(rest: list[str]) -> int:
    """`bench --warm`: bench/warm.py, which needs PostgreSQL and Azurite running."""
    script = ROOT / "bench" / "warm.py"
    if not script.exists():
        raise TaskError("bench/warm.py does not exist", EXIT_USAGE)
    ensure_venv([DEV_LOCK], project=True)
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false"}
    if not {"-h", "--help"} & set(rest):
        ensure_node_modules()
        env["INGEST_TEST_AZURITE_CONNECTION_STRING"] = ensure_services()
    return run([venv_bin("python"), script, *rest], cwd=ROOT, env=child_env(env))


def uv_compile_commands(
    uv: str | os.PathLike[str], upgrade: bool, deploy_extras: Sequence[str]
) -> list[list[str]]:
    """The three `uv pip compile` calls, runtime lock first (the dev lock is pinned to it)."""
    common = [
        "--universal",
        "--python-version",
        LOCK_PYTHON,
        "--generate-hashes",
        "--quiet",
        "--custom-compile-command",
        "python3 tasks.py lock",
        *(["--upgrade"] if upgrade else []),
    ]
    base = [os.fspath(uv), "pip", "compile", *common]
    return [
        [*base, "pyproject.toml", *[f"--extra={e}" for e in deploy_extras], "-o", RUNTIME_LOCK],
        [
            *base,
            "pyproject.toml",
            "requirements-dev.in",
            "--all-extras",
            "--constraint",
            RUNTIME_LOCK,
            "-o",
            DEV_LOCK,
        ],
        [*base, "requirements-infra.in", "-o", INFRA_LOCK],
    ]


def cmd_lock(args: list[str]) -> int:
    upgrade, extras = False, list(DEPLOYED_EXTRAS)
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--upgrade":
            upgrade = True
        elif arg == "--deploy-extras" and rest:
            extras = [e.strip() for e in rest.pop(0).split(",") if e.strip()]
        else:
            raise TaskError(f"unexpected argument {arg!r} (see: python3 tasks.py lock --help)", 2)
    uv = venv_bin("uv")
    if not uv.exists():
        # bootstrap: the venv (from the current locks) brings uv; a first clone has one
        ensure_venv([DEV_LOCK])
    if not uv.exists():
        raise TaskError(".venv/bin/uv not found (uv belongs in requirements-dev.in)", EXIT_MISSING)
    for cmd in uv_compile_commands(uv, upgrade, extras):
        say(" ".join(cmd[3:]))
        code = run(cmd, cwd=ROOT)
        if code != 0:
            raise TaskError(f"uv pip compile failed (exit {code}); see the output above", code)
    say("locks written; review `git diff requirements*.txt` and commit them")
    return 0


COMMANDS = {
    "lock": cmd_lock,
    "demo": cmd_demo,
    "test": cmd_test,
    "services": cmd_services,
    "bench": cmd_bench,
}


def usage() -> str:
    return (__doc__ or "").strip() + "\n"


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under whatever python3 is
        say(f"Python 3.11+ is required (this is {sys.version.split()[0]})")
        return EXIT_MISSING
    if not argv or argv[0] in ("-h", "--help", "help"):
        if len(argv) > 1 and argv[0] == "help" and argv[1] in HELP:
            print(HELP[argv[1]], end="")
        else:
            print(usage(), end="")
        return 0 if argv else EXIT_USAGE
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        say(f"unknown command {command!r}\n")
        print(usage(), end="", file=sys.stderr)
        return EXIT_USAGE
    if args[:1] in (["-h"], ["--help"]):
        print(HELP[command], end="")
        return 0
    try:
        return COMMANDS[command](args)
    except TaskError as exc:
        say(str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
