"""Maintenance of the lake's tables outside a run: `dlt-ingest compact`.

Each job is compacted under its own lease (`ingest.lake.lease`), like any writer of its table,
after the clean-up of loads that never committed: a compaction never runs beside a load of the
same table, and its base is committed like a load (`ingest.job.compaction`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from ingest.configuration import load_config
from ingest.errors import RequestError
from ingest.job.compaction import Compaction, compact
from ingest.lake.destination import Destination
from ingest.lake.layout import lease_name
from ingest.lake.lease import Holder, lease_for
from ingest.lake.loads import remove_incomplete_loads
from ingest.plan import new_run_id
from ingest.settings import Settings
from ingest.vocabulary import TableFormat

log = logging.getLogger(__name__)


def compact_jobs(
    config_path: str, destination: str, job_ids: list[str], settings: Settings
) -> list[Compaction]:
    """Compact the INCREMENTAL jobs of the config (only `job_ids` when given)."""
    config = load_config(config_path)
    known = {job.job_id for job in config.jobs}
    unknown = [j for j in job_ids if j not in known]
    if unknown:
        raise RequestError(
            f"unknown job id(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    jobs = [
        job
        for job in config.jobs
        if (not job_ids or job.job_id in job_ids)
        and job.keeps_versions
        and job.table_format != TableFormat.DELTA
    ]
    dest = Destination.from_url(destination)
    run_id = new_run_id()
    done = []
    for job in jobs:
        workdir = Path(tempfile.mkdtemp(prefix=f"compact-{job.job_id}-", dir=_work(settings)))
        try:
            lease = lease_for(
                dest,
                lease_name(job.source_name, job.lake_table),
                Holder.me(run_id, "compact"),
                wait_s=settings.lease_wait_s,
                same_task_wait_s=settings.lease_wait_s,
                period_s=settings.lease_period_s,
            )
            with lease:
                _, log_ = remove_incomplete_loads(
                    dest,
                    job.source_name,
                    job.lake_table,
                    job.pipeline_name,
                    job.schema_name_in_lake,
                    (job.backfill_schema_name_in_lake, job.base_schema_name_in_lake),
                    lease,
                )
                report, _ = compact(
                    dest,
                    job,
                    lease,
                    log_,
                    run_id=run_id,
                    workdir=workdir,
                    memory_mb=settings.state_memory_mb,
                    file_max_rows=settings.file_max_rows,
                    retention_days=settings.history_retention_days,
                    dictionary=settings.parquet_dictionary,
                )
        except Exception as exc:  # one table's failure never stops the others
            log.error("job %s not compacted: %s: %s", job.job_id, type(exc).__name__, exc)
            report = Compaction(job.job_id, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        done.append(report)
    return done


def _work(settings: Settings) -> str:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return str(settings.work_dir)
