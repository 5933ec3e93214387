"""A CDC job's replication slot and publication names.

Configured (`cdc_slot`, `cdc_publication`), or made from the job: `ingest_` + the job's
pipeline name (source and table), cut to PostgreSQL's 63 characters with a hash of the whole
when longer, lowercase letters, digits and `_` only. The same job always gets the same names,
two jobs never share them (their pipeline names differ)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ingest.config.model import JobConfig

PREFIX = "ingest_"
MAX_NAME = 63


@dataclass(frozen=True)
class CdcNames:
    slot: str
    publication: str


def default_name(job: JobConfig) -> str:
    base = PREFIX + re.sub(r"[^a-z0-9_]", "_", job.pipeline_name.lower())
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base[: MAX_NAME - 11]}_{digest}"


def names_of(job: JobConfig) -> CdcNames:
    made = default_name(job)
    return CdcNames(job.cdc_slot or made, job.cdc_publication or made)
