"""Deployment footprint: installed and zipped size of the locked runtime dependencies, and cold
import times, with and without the optional extras (connectorx, deltalake).

    .venv/bin/python bench/footprint.py [--repeat 5] [--no-zip]

The runtime packages are those of the deployed lock (requirements.txt) plus the packages of
the optional extras (connectorx, deltalake and what only they require, from the dev lock,
which holds every extra). Sizes are read from the installed distributions' RECORD files in
this interpreter's environment (the test venv has every locked package); a package belongs
to an extra when everything that requires it (the locks' `# via` lines) is that extra. The zip is
what a deployment package holding these site-packages would weigh (deflate, level 6).
Import times are medians of --repeat fresh processes (interleaved, after a warm-up); "without" hides the extras' modules
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


def import_once(statement: str, hide: tuple[str, ...]) -> float:
    hide_code = "".join(f"sys.modules[{m!r}] = None\n" for m in hide)
    code = (
        "import sys, time\n" + hide_code + "t = time.perf_counter()\n" + statement + "\n"
        "print(time.perf_counter() - t)\n"
    )
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{statement!r} failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def import_pair(statement: str, repeat: int) -> tuple[float, float]:
    """Medians with and without the extras, interleaved (with, without, with, ...) after one
    discarded warm-up each, so a slow spell of the machine hits both alike."""
    import_once(statement, ())
    import_once(statement, OPTIONAL)
    with_s, without_s = [], []
    for _ in range(repeat):
        with_s.append(import_once(statement, ()))
        without_s.append(import_once(statement, OPTIONAL))
    return statistics.median(with_s), statistics.median(without_s)


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--dev-lock", type=Path, default=ROOT / "requirements-dev.txt")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-zip", action="store_true", help="skip the (slow) zip sizes")
    args = parser.parse_args()

    runtime = read_lock(args.lock)
    dev = read_lock(args.dev_lock)
    extras = {name: only_through(dev, {name}) for name in OPTIONAL}
    everything = set(runtime).union(*extras.values())
    deployed = [name for name in OPTIONAL if name in runtime]
    missing = [n for n in everything if not _installed(n)]
    if missing:
        print(f"not installed here (sizes exclude them): {', '.join(sorted(missing))}")
    present = everything - set(missing)
    print(
        f"{args.lock.name}: {len(runtime)} packages (extras deployed: {', '.join(deployed) or 'none'});"
        f" with every extra: {len(everything)}"
    )
    rows_deployed = present & set(runtime)
    without_all = present - set().union(*extras.values())
    rows = [
        ("as deployed (requirements.txt)", rows_deployed),
        ("runtime with every extra", present),
    ]
    for name, pkgs in extras.items():
        rows.append((f"without {name} ({', '.join(sorted(pkgs))})", present - pkgs))
    rows.append(("without both", without_all))
    for label, pkgs in rows:
        size = installed_bytes(pkgs)
        zipped = "" if args.no_zip else f", zipped {mb(zipped_bytes(pkgs))}"
        print(f"{label}: installed {mb(size)}{zipped}")
    for name, pkgs in extras.items():
        print(f"  {name} alone: installed {mb(installed_bytes(pkgs & present))}")

    engine = "from ingest.runtime.warmup import preload_engine; preload_engine()"
    cases = {
        "import function_app": "import function_app",
        "first engine import of an activity (preload_engine)": engine,
        "engine + fast path module (ingest.sources.fast_arrow)": engine
        + "; import ingest.sources.fast_arrow",
    }
    print(f"\ncold imports, median of {args.repeat} processes:")
    for label, statement in cases.items():
        with_s, without_s = import_pair(statement, args.repeat)
        print(f"  {label}: {with_s:.3f} s with the extras installed, {without_s:.3f} s without")
    for name in OPTIONAL:
        alone = statistics.median(import_once(f"import {name}", ()) for _ in range(args.repeat))
        print(f"  import {name} alone (paid only by a job that uses it): {alone:.3f} s")
    return 0


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
