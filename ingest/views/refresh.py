"""Write the view files: `metadata/views/<dialect>/<source>__<table>.sql`, one per job.

`refresh_views` builds every job's definitions (`ingest.views.inventory`), renders them
(`ingest.views.dialects`) and writes each file whole (a blob upload, or a rename on local
disks), so a reader never sees half a file. A job whose views did not change is not
rewritten (the manifest keeps a fingerprint of what was written).

Overlapping runs (a manual run during the nightly one, the CLI and the app on one lake) may
refresh at the same time. Completed loads only ever grow, so after writing, the refresh
lists the markers again and rebuilds any job that gained a load meanwhile: whichever refresh
finishes last leaves views of at least every load completed before it started.

`refresh_after_run` is the hook of a run's audit step (local run and function app): it never
raises; a failure is logged and returned in the run summary.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.config import JobConfig
from ingest.configuration import load_config
from ingest.lake.atomic import replace_file
from ingest.lake.destination import Destination
from ingest.lake.layout import VIEWS_DIR
from ingest.views import DIALECTS
from ingest.views.dialects import LakeUrls, render
from ingest.views.inventory import (
    HISTORY_SUFFIX,
    JobViews,
    SourceListing,
    build_job_views,
    job_loads,
    list_source,
    manifest_path,
)

log = logging.getLogger(__name__)

#: rounds of "write, then check no load completed meanwhile"
MAX_ROUNDS = 3
#: jobs refreshed at once on Azure (I/O-bound: small listings, footers and uploads)
THREADS = 8


@dataclass
class RefreshReport:
    jobs: int = 0
    files_written: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "files_written": self.files_written,
            "unchanged": self.unchanged,
            "skipped": [{"job_id": j, "reason": r} for j, r in self.skipped],
            "errors": [{"job_id": j, "error": e} for j, e in self.errors],
            "seconds": round(self.seconds, 3),
            "target": self.target,
        }

    def summary_line(self) -> str:
        text = (
            f"views: {self.jobs} job(s), {self.files_written} file(s) written, "
            f"{self.unchanged} unchanged, {len(self.skipped)} not loaded yet"
        )
        if self.errors:
            text += f", {len(self.errors)} failed ({', '.join(j for j, _ in self.errors)})"
        return text + f" -> {self.target}"


def view_file_name(job: JobConfig) -> str:
    return f"{job.source_name}__{job.lake_table}.sql"


def _fingerprint(texts: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for dialect in sorted(texts):
        digest.update(dialect.encode() + b"\0" + texts[dialect].encode() + b"\0")
    return digest.hexdigest()


def write_text(dest: Destination, fs: Any, path: str, text: str) -> None:
    """Write a whole file: rename into place on local disks, one blob upload on Azure."""
    if dest.protocol == "file":
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        replace_file(path, text)
    else:
        fs.pipe_file(path, text.encode("utf-8"))


class _Refresher:
    """One refresh. Jobs may run in threads: the report is only changed under `lock`."""

    def __init__(
        self,
        jobs: Sequence[JobConfig],
        dest: Destination,
        dialects: Sequence[str],
        out: Path | None,
        force: bool,
    ):
        self.jobs = list(jobs)
        self.dest = dest
        self.fs = dest.filesystem()
        self.urls = LakeUrls.of(dest)
        self.dialects = list(dialects)
        self.out = out
        self.force = force
        self.report = RefreshReport(
            jobs=len(self.jobs),
            target=str(out) if out else dest.display_url.rstrip("/") + "/" + VIEWS_DIR,
        )
        self.lock = threading.Lock()
        self.tables: dict[str, set[str]] = {}
        for job in self.jobs:
            self.tables.setdefault(job.source_name, set()).add(job.lake_table)

    def listings(self, sources: Iterable[str]) -> dict[str, SourceListing]:
        return {source: list_source(self.dest, source, self.fs) for source in sorted(set(sources))}

    def run(self) -> RefreshReport:
        clock = time.monotonic()
        pending = self.jobs
        listings = self.listings(j.source_name for j in pending)
        for _ in range(MAX_ROUNDS):
            built = self.refresh_jobs(pending, listings)
            # loads completed while we wrote: rebuild those jobs (see the module docstring)
            listings = self.listings(j.source_name for j in pending)
            pending = [
                job
                for job in pending
                if (views := built[job.job_id]) is not None
                and job_loads(self.dest, job, listings[job.source_name]) != views.completed
            ]
            if not pending:
                break
            log.info("views: %d job(s) gained a load while refreshing; again", len(pending))
        self.report.seconds = time.monotonic() - clock
        return self.report

    def refresh_jobs(
        self, jobs: Sequence[JobConfig], listings: Mapping[str, SourceListing]
    ) -> dict[str, JobViews | None]:
        """Jobs in parallel threads on Azure (each refresh is a few small requests), in turn
        on local disks."""
        if self.dest.protocol == "file" or len(jobs) < 2:
            return {job.job_id: self.refresh_job(job, listings[job.source_name]) for job in jobs}

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            futures = {
                job.job_id: pool.submit(self.refresh_job, job, listings[job.source_name])
                for job in jobs
            }
            return {job_id: future.result() for job_id, future in futures.items()}

    def refresh_job(self, job: JobConfig, listing: SourceListing) -> JobViews | None:
        try:
            history_ok = f"{job.lake_table}{HISTORY_SUFFIX}" not in self.tables[job.source_name]
            built = build_job_views(self.dest, job, listing, self.fs, history_allowed=history_ok)
            before = built.manifest.to_json()
            if built.skipped:
                with self.lock:
                    self.report.skipped.append((job.job_id, built.skipped))
                return built
            self.write(job, built)
            if built.manifest.to_json() != before or self.force:
                self.save_manifest(job, built)
            return built
        except Exception as exc:  # one table's views never stop the others
            message = f"{type(exc).__name__}: {exc}"
            log.error("views of job %s (%s) not written: %s", job.job_id, job.lake_table, message)
            log.debug("views of job %s", job.job_id, exc_info=True)
            with self.lock:
                self.report.errors.append((job.job_id, message))
            return None

    def write(self, job: JobConfig, built: JobViews) -> None:
        texts = {dialect: render(dialect, built.views, self.urls) for dialect in self.dialects}
        if self.out is not None:
            for dialect, text in texts.items():
                target = self.out / dialect / view_file_name(job)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            with self.lock:
                self.report.files_written += len(texts)
            return
        fingerprint = _fingerprint(texts)
        if fingerprint == built.manifest.written and not self.force:
            with self.lock:
                self.report.unchanged += 1
            return
        for dialect, text in texts.items():
            path = self.dest.path(VIEWS_DIR, dialect, view_file_name(job))
            write_text(self.dest, self.fs, path, text)
        with self.lock:
            self.report.files_written += len(texts)
        built.manifest.written = fingerprint

    def save_manifest(self, job: JobConfig, built: JobViews) -> None:
        try:
            write_text(self.dest, self.fs, manifest_path(self.dest, job), built.manifest.to_json())
        except Exception as exc:  # a cache: the next refresh learns the same again
            if self.out is None:
                raise
            log.info("views: manifest of job %s not saved in the lake: %s", job.job_id, exc)


def refresh_views(
    jobs: Sequence[JobConfig],
    destination: str,
    *,
    dialects: Sequence[str] = DIALECTS,
    out: str | Path | None = None,
    force: bool = False,
) -> RefreshReport:
    """Write the views of `jobs` into the lake (or into `out`, a local folder)."""
    dest = Destination.from_url(destination)
    return _Refresher(jobs, dest, dialects, Path(out) if out else None, force).run()


def refresh_for_config(config_path: str, destination: str, **kwargs: Any) -> RefreshReport:

    return refresh_views(load_config(config_path).jobs, destination, **kwargs)


def refresh_after_run(config_path: str | None, destination: str, run_id: str) -> dict[str, Any]:
    """After a run's audit: refresh every dialect's views in the lake. Never raises: a failure
    to write views does not fail the run nor lose its audit; it is logged and returned."""
    try:
        if not config_path:
            raise ValueError("the run names no configuration file")
        report = refresh_for_config(config_path, destination)
    except Exception as exc:
        log.error("run %s: views not refreshed: %s: %s", run_id, type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    level = logging.WARNING if report.errors else logging.INFO
    log.log(level, "run %s: %s (%.1f s)", run_id, report.summary_line(), report.seconds)
    return report.as_dict()
