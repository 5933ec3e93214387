"""The CDC jobs' slots on their sources, outside a run: `dlt-ingest cdc status` and
`dlt-ingest cdc drop`.

`status` lists, per source database of the configured CDC jobs, every logical replication slot
(the jobs' and any other): whether a reader holds it, its confirmed position, the WAL it keeps
on the source (retained bytes) and how far behind the server's position it is (lag bytes). A
forgotten slot keeps WAL until the source's disk fills: this is how to see one.

`drop` removes a job's slot (and, unless kept, its publication). A slot a reader holds is
refused by PostgreSQL (the job is running). The job's next run then says its slot is gone;
`run --full-refresh --job ...` copies the table again into a new slot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ingest.config import JobConfig
from ingest.configuration import load_config
from ingest.errors import RequestError
from ingest.job.cdc import connect_args
from ingest.secrets import SecretResolver, build_resolver
from ingest.settings import Settings
from ingest.sources import get_builder
from ingest.sources.cdc.names import names_of
from ingest.sources.cdc.pgoutput import lsn_text
from ingest.sources.cdc.replication import Replication, SlotInfo, slots


@dataclass(frozen=True)
class SlotRow:
    source_name: str
    database: str
    slot_name: str
    #: the CDC job whose slot it is ("" for a slot of no configured job)
    job_id: str
    active: bool
    confirmed_lsn: str
    retained_bytes: int | None
    lag_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jobs(config_path: str, job_ids: list[str]) -> list[JobConfig]:
    config = load_config(config_path)
    cdc = [job for job in config.jobs if job.is_cdc]
    known = {job.job_id for job in cdc}
    unknown = [j for j in job_ids if j not in known]
    if unknown:
        raise RequestError(
            f"not a CDC job of {config_path}: {', '.join(unknown)}; CDC jobs: "
            f"{', '.join(sorted(known)) or 'none'}"
        )
    return [job for job in cdc if not job_ids or job.job_id in job_ids]


def _replication(job: JobConfig, resolver: SecretResolver) -> Replication:
    builder = get_builder(job.source_type)
    secrets = builder.secrets(resolver, job.source_name)
    table = f"{job.schema_name or 'public'}.{job.table_name}"  # only named in messages here
    return Replication(connect_args(builder, secrets), names_of(job), table)


def _lsn_text(info: SlotInfo) -> str:
    return lsn_text(info.confirmed_lsn) if info.confirmed_lsn is not None else ""


def slot_status(config_path: str, job_ids: list[str], settings: Settings) -> list[SlotRow]:
    resolver = build_resolver(settings.secrets_file, settings.key_vault_url)
    rows: list[SlotRow] = []
    seen: set[tuple[str, str]] = set()
    jobs = _jobs(config_path, job_ids)
    by_slot = {(job.source_name, names_of(job).slot): job.job_id for job in jobs}
    for job in jobs:
        replication = _replication(job, resolver)
        connection = replication.connection()
        try:
            database = str(connection.get_dsn_parameters().get("dbname") or "")
            if (job.source_name, database) in seen:
                continue
            seen.add((job.source_name, database))
            for info in slots(connection):
                if info.database != database:
                    continue
                rows.append(
                    SlotRow(
                        job.source_name,
                        database,
                        info.name,
                        by_slot.get((job.source_name, info.name), ""),
                        info.active,
                        _lsn_text(info),
                        info.retained_bytes,
                        info.lag_bytes,
                    )
                )
        finally:
            connection.close()
    return rows


def drop_slots(
    config_path: str, job_ids: list[str], settings: Settings, *, keep_publication: bool
) -> list[tuple[str, list[str]]]:
    """(job id, what was dropped) per job."""
    if not job_ids:
        raise RequestError("name the job(s) whose slot to drop: --job ID")
    resolver = build_resolver(settings.secrets_file, settings.key_vault_url)
    done = []
    for job in _jobs(config_path, job_ids):
        replication = _replication(job, resolver)
        connection = replication.connection()
        try:
            done.append(
                (job.job_id, replication.drop(connection, publication=not keep_publication))
            )
        finally:
            connection.close()
    return done
