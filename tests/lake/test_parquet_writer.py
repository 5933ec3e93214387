"""The lake's Parquet encoding (ingest.lake.parquet_writer): dlt's writer options plus a dictionary
policy (INGEST_PARQUET_DICTIONARY auto/true/false); the data is the same under every policy."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.common.data_writers.writers import WRITER_SPECS, ArrowToParquetWriter

from ingest.config import JobConfig
from ingest.lake.parquet_writer import (
    LakeParquetWriter,
    PlainParquetWriter,
    dictionary_columns,
    use_lake_parquet_writer,
)
from tests.conftest import lake_files, read_lake_table
from tests.fixtures.jobs import run_task

SOURCE = "pg_parquet"
DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}


def writer_kwargs(
    writer_class: type, monkeypatch: pytest.MonkeyPatch, data: pa.Table | None = None
) -> dict[str, Any]:
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
    writer.write_data([data if data is not None else pa.table({"id": [1, 2, 3]})])
    writer.close()
    monkeypatch.setattr(pq, "ParquetWriter", real)
    return seen


@pytest.mark.parametrize("writer_class", [LakeParquetWriter, PlainParquetWriter])
def test_lake_writers_pass_every_dlt_option(monkeypatch, writer_class):
    monkeypatch.setenv("DATA_WRITER__COMPRESSION", "zstd")
    dlt_options = writer_kwargs(ArrowToParquetWriter, monkeypatch)
    ours = writer_kwargs(writer_class, monkeypatch)
    assert dlt_options, "dlt's writer did not construct a ParquetWriter"
    assert dlt_options["compression"] == "zstd"
    assert "use_dictionary" in ours
    ours.pop("use_dictionary")
    # a dlt upgrade that adds or changes an option shows up here
    assert ours == dlt_options


def test_auto_dictionary_only_for_columns_with_few_distinct_values(monkeypatch):
    rows = 1000
    data = pa.table(
        {
            "id": list(range(rows)),  # all distinct
            "status": [("new", "paid", "shipped")[i % 3] for i in range(rows)],  # 3 distinct
            "amount": [i % 150 for i in range(rows)],  # 150 distinct: 15%, over the 10% limit
            "tier": [i % 100 for i in range(rows)],  # 100 distinct: exactly 10%
            "coded": pa.array(["a", "b"] * (rows // 2)).dictionary_encode(),
            "tags": [[i % 2] for i in range(rows)],  # nested: never
        }
    )
    assert dictionary_columns(data) == ["status", "tier", "coded"]
    assert dictionary_columns(data.to_batches()[0]) == ["status", "tier", "coded"]
    options = writer_kwargs(LakeParquetWriter, monkeypatch, data)
    assert options["use_dictionary"] == ["status", "tier", "coded"]
    assert writer_kwargs(PlainParquetWriter, monkeypatch, data)["use_dictionary"] is False


def test_auto_dictionary_counts_a_bounded_sample_of_the_first_rows():
    from ingest.lake.parquet_writer import SAMPLE_ROWS

    # low-cardinality in the sample, unique afterwards: the sample decides
    values = ["same"] * SAMPLE_ROWS + [f"v{i}" for i in range(SAMPLE_ROWS)]
    assert dictionary_columns(pa.table({"late": values})) == ["late"]
    assert dictionary_columns(pa.table({"early": list(reversed(values))})) == []


def test_use_lake_parquet_writer_switches_dlt_writer_for_arrow_items():
    from ingest.lake.parquet_writer import WRITERS
    from ingest.vocabulary import DictionaryPolicy

    assert set(WRITERS) == set(DictionaryPolicy)
    spec = ArrowToParquetWriter.writer_spec()
    try:
        for policy, expected in [
            ("false", PlainParquetWriter),
            ("true", ArrowToParquetWriter),
            ("auto", LakeParquetWriter),
        ]:
            use_lake_parquet_writer(policy)
            assert WRITER_SPECS[spec] is expected
    finally:
        use_lake_parquet_writer("auto")


def encodings(path: str) -> dict[str, set[str]]:
    metadata = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(index)
            found.setdefault(chunk.path_in_schema, set()).update(chunk.encodings)
    return found


@pytest.mark.parametrize("dictionary", ["auto", "false", "true"])
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
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": lake})
    assert result["status"] == "SUCCESS", result["error"]

    files = lake_files(lake, SOURCE, "events")
    assert files
    for path in files:
        with_dictionary = {
            column for column, found in encodings(path).items() if found & DICTIONARY_ENCODINGS
        }
        if dictionary == "true":
            assert {"id", "status", "note", "at"} <= with_dictionary
        elif dictionary == "auto":
            assert "status" in with_dictionary  # 3 distinct values
            assert not {"id", "note", "at"} & with_dictionary  # all distinct
        else:
            assert not with_dictionary

    table = read_lake_table(lake, SOURCE, "events").sort_by("id")
    columns = ["id", "status", "note", "at"]
    lake_rows = [tuple(row[c] for c in columns) for row in table.select(columns).to_pylist()]
    assert lake_rows == pg.query("SELECT id, status, note, at FROM events ORDER BY id")
