"""How long the HTML run report takes and how big it is: `.venv/bin/python bench/report.py --help`.

Writes --days nights of audit for a lake of --tables tables (sources of --per-source tables; ~93 %
SUCCESS, some WARN / FAILED / SKIPPED, errors of 142 characters) with the real audit writer
into a temporary local lake, then builds and writes the report of the last run the way every
run does (`ingest.reports.report_files.write_report`: read the audit files, build, draw the
charts, write `<run_id>.html` and `latest.html`). The first build in the process includes
importing matplotlib (what the function app's audit step pays once per worker); then
--repeat warm builds, and --repeat runs of `dlt-ingest report --html` in a fresh process
(interpreter start and every import included). Prints numbers only; asserts nothing.

--screenshot PNG also loads the report in headless Chromium (network off, as the browser test
does) and writes a full-page screenshot, 128 colours (README's docs/report.png:
`bench/report.py --tables 18 --per-source 6 --seed 8 --repeat 0 --screenshot docs/report.png`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: the error of a FAILED load (the length of a typical connection error)
ERROR = (
    "source 'src_03' (postgresql) at erp-db.internal:5432: connection refused; check that the "
    "server runs and the firewall lets the function app in"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=1000, help="tables in the lake (1000)")
    parser.add_argument("--per-source", type=int, default=20, help="tables per source (20)")
    parser.add_argument("--days", type=int, default=30, help="nights of audit (30)")
    parser.add_argument("--repeat", type=int, default=3, help="warm builds after the first (3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--screenshot", metavar="PNG", help="also write a full-page screenshot")
    args = parser.parse_args(argv)

    from ingest.reports import report_files, report_html, run_report
    from tests.reports.audit_factory import tables, write_nights

    with tempfile.TemporaryDirectory(prefix="report-bench-") as folder:
        lake = (Path(folder) / "lake").as_uri()
        days = run_report.window(args.days)
        clock = time.perf_counter()
        run_ids = write_nights(
            lake, days, tables(args.tables, args.per_source), seed=args.seed, error=ERROR
        )
        print(
            f"lake: {args.tables:,} tables x {args.days} days = {args.tables * args.days:,} "
            f"audit rows, written in {time.perf_counter() - clock:.1f} s"
        )
        timings = []
        for attempt in range(1 + args.repeat):
            clock, cpu_clock = time.perf_counter(), time.process_time()
            written = report_files.write_report(lake, run_ids[-1], args.days)
            timings.append(time.perf_counter() - clock)
            label = "first (imports matplotlib)" if attempt == 0 else f"warm {attempt}"
            print(
                f"write_report {label}: {timings[-1]:.2f} s wall, "
                f"{time.process_time() - cpu_clock:.2f} s CPU"
            )
        page = written["page"]
        size = len(page.encode("utf-8"))
        print(f"report: {size:,} bytes ({size / 1e6:.2f} MB), {written['path']}")
        if args.repeat:
            print(f"warm median: {statistics.median(timings[1:]):.2f} s")

        # where the time goes (warm): reading the audit, the data, the page with its charts
        dest_days = run_report.window(args.days)
        clock = time.perf_counter()
        from ingest.lake.destination import Destination

        audit = run_report.read_window(Destination.from_url(lake), dest_days)
        read_s = time.perf_counter() - clock
        clock = time.perf_counter()
        data = run_report.build(audit, dest_days, lake=lake, run_id=run_ids[-1])
        build_s = time.perf_counter() - clock
        clock = time.perf_counter()
        report_html.render(data)
        render_s = time.perf_counter() - clock
        print(
            f"warm parts: read audit {read_s:.2f} s, build {build_s:.2f} s, render {render_s:.2f} s"
        )
        # the whole command in a fresh process (interpreter, imports, matplotlib, build, write)
        fresh, cpu = [], []
        for _ in range(max(args.repeat, 1)):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            clock = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "ingest", "-q", "report", "--html", "--destination", lake,
                 "--days", str(args.days), "--out", str(Path(folder) / "cli.html")],
                cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            fresh.append(time.perf_counter() - clock)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        print(
            "dlt-ingest report --html in a fresh process: "
            + ", ".join(f"{t:.2f}" for t in fresh)
            + " s wall, "
            + ", ".join(f"{t:.2f}" for t in cpu)
            + " s CPU (user + system; the wall time grows with what else runs)"
        )
        grid = re.search(r'<table class="grid">.*?</table>', page, re.S)
        svgs = re.findall(r"<svg.*?</svg>", page, re.S)
        print(
            f"page parts: grid {len(grid.group(0)) if grid else 0:,} bytes, charts "
            f"{sum(len(s) for s in svgs):,} bytes ({len(svgs)} SVG)"
        )

        if args.screenshot:
            from tests import browser

            with browser.offline_chromium() as page:
                page.load(Path(written["path"]).as_uri())
                errors = page.console_errors()
                shot = page.screenshot(Path(args.screenshot))
            # 128 colours are plenty for a page of flat colours: a third of the bytes
            from PIL import Image

            Image.open(shot).convert("RGB").quantize(
                colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            ).save(shot, optimize=True)
            print(f"screenshot: {shot} ({shot.stat().st_size:,} bytes); console errors: {errors}")
    print(f"generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
