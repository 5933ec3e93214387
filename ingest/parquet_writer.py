"""How the lake's Parquet files are encoded: dlt's Arrow-to-Parquet writer, with a choice dlt
does not expose, dictionary encoding.

pyarrow dictionary-encodes every column by default. For the high-cardinality columns a lake
table mostly holds (keys, timestamps, amounts, free text) the dictionary overflows its 1 MB
page, pyarrow falls back to plain encoding for the rest of the row group, and the work was
wasted. Measured on the benchmark's `orders` table (1M rows, 100k-row batches, zstd):
dictionary on 0.29 s and 43 MB, off 0.17 s and 29 MB, so off is the default
(INGEST_PARQUET_DICTIONARY). zstd compresses the repeated values of low-cardinality columns
(status codes) about as well as a dictionary does; readers (Spark, DuckDB, Synapse, pandas)
read both encodings.

dlt picks the writer class for a file spec from `WRITER_SPECS`; `use_lake_parquet_writer`
points the Arrow-to-Parquet spec at `LakeParquetWriter` (or back at dlt's own writer).
`LakeParquetWriter._create_writer` passes exactly the options dlt's does (kept in step by
tests/test_parquet_writer.py) plus `use_dictionary`.
"""

from __future__ import annotations

from typing import Any

from dlt.common.data_writers.writers import WRITER_SPECS, ArrowToParquetWriter


class LakeParquetWriter(ArrowToParquetWriter):
    """dlt's ArrowToParquetWriter without dictionary encoding."""

    use_dictionary = False

    def parquet_writer_options(self) -> dict[str, Any]:
        """The keyword arguments of pyarrow's ParquetWriter: dlt's, then ours."""
        from dlt.common.libs.pyarrow import pyarrow
        from packaging.version import Version

        options = {
            "flavor": self.parquet_format.flavor,
            "version": self.parquet_format.version,
            "compression": self.parquet_format.compression,
            "data_page_size": self.parquet_format.data_page_size,
            "coerce_timestamps": self.parquet_format.coerce_timestamps,
            "allow_truncated_timestamps": self.parquet_format.allow_truncated_timestamps,
            "use_compliant_nested_type": self.parquet_format.use_compliant_nested_type,
            "write_page_index": self.parquet_format.write_page_index,
        }
        if Version(pyarrow.__version__).major >= 21:
            options["use_content_defined_chunking"] = (
                self.parquet_format.use_content_defined_chunking
            )
        options["use_dictionary"] = self.use_dictionary
        return options

    def _create_writer(self, schema: Any) -> Any:
        from dlt.common.libs.pyarrow import pyarrow

        return pyarrow.parquet.ParquetWriter(self._f, schema, **self.parquet_writer_options())


def use_lake_parquet_writer(dictionary: bool) -> None:
    """Make dlt write Arrow data to Parquet with (True: dlt's own writer) or without
    dictionary encoding, for every pipeline in this process. Idempotent."""
    spec = ArrowToParquetWriter.writer_spec()
    WRITER_SPECS[spec] = ArrowToParquetWriter if dictionary else LakeParquetWriter
