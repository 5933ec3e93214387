"""The lake's Parquet encoding (ingest.parquet_writer): dlt's writer options, dictionary off by
default, INGEST_PARQUET_DICTIONARY=true restores it; the data is the same either way."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.common.data_writers.writers import WRITER_SPECS, ArrowToParquetWriter

from ingest.config import JobConfig
from ingest.job import run_job
from ingest.parquet_writer import LakeParquetWriter, use_lake_parquet_writer
from tests.conftest import lake_files, read_lake_table

SOURCE = "pg_parquet"
DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}


def writer_kwargs(writer_class: type, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The keyword arguments a dlt writer class hands to pyarrow's ParquetWriter."""
    seen: dict[str, Any] = {}
    real = pq.ParquetWriter

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, where: Any, schema: pa.Schema, **kwargs: Any) -> None:
            seen.update(kwargs)
            super().__init__(where, schema, **kwargs)

    monkeypatch.setattr(pq, "ParquetWriter", Recording)
    writer = writer_class(io.BytesIO())
    writer.write_header({})
    writer.write_data([pa.table({"id": [1, 2, 3]})])
    writer.close()
    monkeypatch.setattr(pq, "ParquetWriter", real)
    return seen


def test_lake_writer_passes_every_dlt_option_and_turns_dictionary_off(monkeypatch):
    monkeypatch.setenv("DATA_WRITER__COMPRESSION", "zstd")
    dlt_options = writer_kwargs(ArrowToParquetWriter, monkeypatch)
    ours = writer_kwargs(LakeParquetWriter, monkeypatch)
    assert dlt_options, "dlt's writer did not construct a ParquetWriter"
    assert dlt_options["compression"] == "zstd"
    assert ours.pop("use_dictionary") is False
    # a dlt upgrade that adds or changes an option shows up here
    assert ours == dlt_options


def test_use_lake_parquet_writer_switches_dlt_writer_for_arrow_items():
    spec = ArrowToParquetWriter.writer_spec()
    try:
        use_lake_parquet_writer(dictionary=False)
        assert WRITER_SPECS[spec] is LakeParquetWriter
        use_lake_parquet_writer(dictionary=True)
        assert WRITER_SPECS[spec] is ArrowToParquetWriter
    finally:
        use_lake_parquet_writer(dictionary=False)


def encodings(path: str) -> dict[str, set[str]]:
    metadata = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(index)
            found.setdefault(chunk.path_in_schema, set()).update(chunk.encodings)
    return found


@pytest.mark.parametrize("dictionary", ["false", "true"])
def test_dictionary_setting_controls_encoding_and_data_lands_the_same(
    pg, tmp_path: Path, monkeypatch, dictionary
):
    pg.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, status text, note text, at timestamptz)"
    )
    pg.execute(
        "INSERT INTO events SELECT g, (ARRAY['new','paid','shipped'])[1 + g % 3], md5(g::text), "
        "timestamptz '2024-01-01' + (g || ' seconds')::interval FROM generate_series(1, 5000) g"
    )
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_PARQUET_DICTIONARY", dictionary)
    lake = (tmp_path / "lake").as_uri()
    job = JobConfig("e", True, "postgresql", SOURCE, "events", "FULL", schema_name=pg.name)
    result = run_job({"run_id": "r", "job": job.to_dict(), "destination": lake})
    assert result["status"] == "SUCCESS", result["error"]

    files = lake_files(lake, SOURCE, "events")
    assert files
    for path in files:
        by_column = encodings(path)
        if dictionary == "true":
            assert by_column["status"] & DICTIONARY_ENCODINGS, by_column
        else:
            assert not any(e & DICTIONARY_ENCODINGS for e in by_column.values()), by_column

    table = read_lake_table(lake, SOURCE, "events").sort_by("id")
    columns = ["id", "status", "note", "at"]
    lake_rows = [tuple(row[c] for c in columns) for row in table.select(columns).to_pylist()]
    assert lake_rows == pg.query("SELECT id, status, note, at FROM events ORDER BY id")
