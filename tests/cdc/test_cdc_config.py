"""CDC in the configuration: PostgreSQL only, no watermark, slot and publication names checked."""

from __future__ import annotations

import pytest

from ingest.configuration import load_config
from ingest.errors import ConfigError
from ingest.vocabulary import LoadType
from tests.fixtures.sheet import sheet_header

HEADER = (
    sheet_header(
        "job_id",
        "enabled",
        "source_type",
        "source_name",
        "table_name",
        "load_type",
        "watermark_column",
        "primary_key",
        "cdc_slot",
        "cdc_publication",
        "table_format",
    )
    + "\n"
)


def config(tmp_path, *rows: str):
    path = tmp_path / "jobs.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return load_config(path)


def problems(tmp_path, *rows: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, *rows)
    return str(caught.value)


def test_a_cdc_job_of_postgresql_loads(tmp_path):
    (job,) = config(tmp_path, "c1,Y,postgresql,erp,orders,cdc,,id,,,").jobs
    assert job.load_type == LoadType.CDC and job.is_cdc and job.keeps_versions
    assert not job.is_incremental
    assert job.cdc_slot is None and job.cdc_publication is None
    (named,) = config(tmp_path, "c1,Y,postgresql,erp,orders,CDC,,,my_slot,my_pub,").jobs
    assert (named.cdc_slot, named.cdc_publication) == ("my_slot", "my_pub")
    assert type(named).from_dict(named.to_dict()) == named


def test_cdc_is_refused_for_other_sources_and_with_a_watermark(tmp_path):
    text = problems(
        tmp_path,
        "m1,Y,mysql,shop,orders,CDC,,id,,,",
        "p1,Y,postgresql,erp,orders,CDC,updated_at,id,,,",
        "p2,Y,postgresql,erp,lines,CDC,,id,,,delta",
    )
    assert "row 2" in text and "CDC reads PostgreSQL's logical replication" in text
    assert "row 3" in text and "a CDC job has no watermark" in text
    assert "row 4" in text and "CDC jobs land Parquet" in text


def test_slot_names_follow_postgresql_and_belong_to_one_job(tmp_path):
    text = problems(
        tmp_path,
        "a,Y,postgresql,erp,t1,CDC,,id,Bad-Name,,",
        "b,Y,postgresql,erp,t2,INCREMENTAL,updated_at,id,s1,,",
        "c,Y,postgresql,erp,t3,CDC,,id,shared,,",
        "d,Y,postgresql,erp,t4,CDC,,id,shared,,",
    )
    assert "'Bad-Name' must be 1 to 63 lowercase letters" in text
    assert "only CDC jobs read through a slot" in text
    assert "'shared' is also the cdc_slot of job c" in text and "row 5" in text
