"""Deployment footprint: installed and zipped size of the locked runtime dependencies, and cold
import times, with and without the optional extras (connectorx, deltalake).

    .venv/bin/python bench/footprint.py [--lock requirements.txt] [--repeat 5]

Sizes are read from the installed distributions' RECORD files in this interpreter's
environment (the test venv has every locked package); a package counts as belonging to an
extra when everything that requires it (the lock's `# via` lines) is that extra. The zip is
what a deployment package holding these site-packages would weigh (deflate, level 6).
Import times are medians of --repeat fresh processes; "without" hides the extras' modules
(`sys.modules[name] = None`, what an uninstalled package looks like to `import`). Numbers
only: nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("connectorx", "deltalake")
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+)\s*$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, set[str]]:
    """package -> the packages (or input files) that require it, from uv's annotations."""
    parents: dict[str, set[str]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonical(match.group(1))
            parents[current] = set()
        elif current and (match := _VIA.match(line)):
            parents[current].add(canonical(match.group(1)))
    return parents


def only_through(parents: dict[str, set[str]], roots: set[str]) -> set[str]:
    """`roots` plus every package required by nothing but them (transitively)."""
    out = set(roots)
    changed = True
    while changed:
        changed = False
        for name, via in parents.items():
            if name not in out and via and via <= out:
                out.add(name)
                changed = True
    return out


def files_of(name: str) -> list[Path]:
    dist = md.distribution(name)
    return [Path(str(dist.locate_file(f))) for f in dist.files or []]


def installed_bytes(names: set[str]) -> int:
    return sum(p.stat().st_size for n in names for p in files_of(n) if p.is_file())


def zipped_bytes(names: set[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "package.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for name in names:
                for path in files_of(name):
                    if path.is_file() and path.suffix != ".pyc":
                        archive.write(path, path.name + "/" + str(hash(path)))
        return target.stat().st_size


def import_seconds(statement: str, hide: tuple[str, ...], repeat: int) -> float:
    hide_code = "".join(f"sys.modules[{m!r}] = None\n" for m in hide)
    code = (
        "import sys, time\n" + hide_code + "t = time.perf_counter()\n" + statement + "\n"
        "print(time.perf_counter() - t)\n"
    )
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "PYTHONDONTWRITEBYTECODE": "1"}
    times = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"{statement!r} failed:\n{proc.stderr}")
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-zip", action="store_true", help="skip the (slow) zip sizes")
    args = parser.parse_args()

    parents = read_lock(args.lock)
    everything = set(parents)
    extras = {name: only_through(parents, {name}) & everything for name in OPTIONAL}
    missing = [n for n in everything if not _installed(n)]
    if missing:
        print(f"not installed here (sizes exclude them): {', '.join(sorted(missing))}")
    present = everything - set(missing)
    print(f"lock: {args.lock.name}, {len(everything)} packages")
    without_all = present - set().union(*extras.values())
    rows = [("all locked runtime packages", present)]
    for name, pkgs in extras.items():
        rows.append((f"without {name} ({', '.join(sorted(pkgs))})", present - pkgs))
    rows.append(("without both", without_all))
    for label, pkgs in rows:
        size = installed_bytes(pkgs)
        zipped = "" if args.no_zip else f", zipped {mb(zipped_bytes(pkgs))}"
        print(f"{label}: installed {mb(size)}{zipped}")
    for name, pkgs in extras.items():
        print(f"  {name} alone: installed {mb(installed_bytes(pkgs & present))}")

    engine = "from ingest.warmup import preload_engine; preload_engine()"
    cases = {
        "import function_app": "import function_app",
        "first engine import of an activity (preload_engine)": engine,
        "engine + fast path module (ingest.sources.fast_arrow)": engine
        + "; import ingest.sources.fast_arrow",
    }
    print(f"\ncold imports, median of {args.repeat} processes:")
    for label, statement in cases.items():
        with_s = import_seconds(statement, (), args.repeat)
        without_s = import_seconds(statement, OPTIONAL, args.repeat)
        print(f"  {label}: {with_s:.3f} s with the extras, {without_s:.3f} s without")
    for name in OPTIONAL:
        print(f"  import {name} alone: {import_seconds(f'import {name}', (), args.repeat):.3f} s")
    return 0


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
