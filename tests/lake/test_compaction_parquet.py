"""A compacted base is encoded like the loads' own files: zstd, and a dictionary only for the
columns with few distinct values (INGEST_PARQUET_DICTIONARY=auto). pyarrow's default, a
dictionary for every column, made the base of bench/current_state.py's table a third bigger
than the loads it replaced."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ingest.cli import main
from ingest.lake.destination import Destination
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders
from tests.fixtures.sheet import TABLE_JOB, sheet_header


def test_the_base_has_dictionaries_only_where_values_repeat(pg, file_lake, monkeypatch, tmp_path):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 20_000)  # qty: 7 values; order_id, customer, updated_at: all distinct
    pg.use_as(monkeypatch, SOURCE)
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + f"\no1,Y,postgresql,{SOURCE},{pg.name},orders,INCREMENTAL,"
        "updated_at,order_id\n",
        encoding="utf-8",
    )
    args = ["--config", str(config), "--destination", file_lake]
    assert main(["run", *args]) == 0
    assert main(["compact", *args]) == 0

    root = Path(Destination.from_url(file_lake).path())
    bases = sorted(root.glob(f"{SOURCE}/orders/**/*.base*.parquet"))
    assert len(bases) == 1, bases
    metadata = pq.ParquetFile(bases[0]).metadata
    assert metadata.num_rows == 20_000
    group = metadata.row_group(0)
    encoded = {
        group.column(i).path_in_schema: (group.column(i).has_dictionary_page, group.column(i))
        for i in range(group.num_columns)
    }
    assert encoded["qty"][0], "a column of 7 values has a dictionary"
    for name in ("order_id", "customer", "updated_at"):
        assert not encoded[name][0], f"{name}, all distinct, has a dictionary"
    assert all(c.compression == "ZSTD" for _, c in encoded.values())
