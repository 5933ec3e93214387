"""How the lake's Parquet files are encoded: dlt's Arrow-to-Parquet writer, plus a choice dlt
does not expose, dictionary encoding per column (INGEST_PARQUET_DICTIONARY).

pyarrow dictionary-encodes every column by default. That pays for low-cardinality columns
(status codes, countries: smaller files, faster writes) and is wasted on high-cardinality ones
(keys, timestamps, amounts, free text): the dictionary overflows its 1 MB page, pyarrow falls
back to plain encoding for the rest of the row group, and the file grows. Measured here with
zstd, 1M rows in 100k-row batches:

- the benchmark's `orders` table (mostly unique values): dictionary everywhere 0.29 s / 43 MB,
  nowhere 0.17 s / 29 MB;
- a table of four low-cardinality text columns: dictionary everywhere 0.10 s / 3.9 MB,
  nowhere 0.14 s / 6.5 MB.

So the default, `auto`, decides per column from the first 10,000 rows of each file: a column gets
a dictionary when at most 10% of those values are distinct (dictionary-typed Arrow columns
always do, nested ones never). Counting a whole 100k-row batch instead cost ~8 MB of peak
memory per file. `true` is pyarrow's default (every column), `false` none.

dlt picks the writer class for a file spec from `WRITER_SPECS`; `use_lake_parquet_writer`
points the Arrow-to-Parquet spec at the writer for the chosen policy. The writers pass exactly
the options dlt's does (kept in step by tests/lake/test_parquet_writer.py) plus `use_dictionary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dlt.common.data_writers.writers import WRITER_SPECS, ArrowToParquetWriter
from packaging.version import Version

from ingest.vocabulary import DictionaryPolicy

#: `auto`: a column is dictionary-encoded when at most this share of a batch's values differ
MAX_DISTINCT_SHARE = 0.1
#: ... of its first rows (a bounded sample: the count costs time and memory per file)
SAMPLE_ROWS = 10_000


def dictionary_columns(batch: Any) -> list[str]:
    """The columns of an Arrow table or record batch worth dictionary-encoding (see module)."""

    chosen = []
    batch = batch.slice(0, SAMPLE_ROWS)
    limit = max(1, int(batch.num_rows * MAX_DISTINCT_SHARE))
    for index, field in enumerate(batch.schema):
        if pa.types.is_dictionary(field.type):
            chosen.append(field.name)
            continue
        if pa.types.is_nested(field.type) or batch.num_rows == 0:
            continue
        try:
            distinct = pc.count_distinct(batch.column(index), mode="all").as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        if distinct <= limit:
            chosen.append(field.name)
    return chosen


def dictionary_for(policy: DictionaryPolicy, first_batch: Any) -> bool | list[str]:
    """pyarrow's `use_dictionary` for a file the engine writes itself (a compacted base), by
    the INGEST_PARQUET_DICTIONARY policy, from the file's first batch."""
    if policy == DictionaryPolicy.AUTO:
        return dictionary_columns(first_batch)
    return policy == DictionaryPolicy.TRUE


class LakeParquetWriter(ArrowToParquetWriter):
    """dlt's ArrowToParquetWriter choosing dictionary encoding per column (`auto`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.use_dictionary: bool | list[str] = False

    def choose_dictionary(self, first_batch: Any) -> bool | list[str]:
        return dictionary_columns(first_batch)

    def write_data(self, items: Sequence[Any]) -> None:
        if self.writer is None and items:
            # the first write of a file creates its pyarrow writer (dlt's write_data)
            self.use_dictionary = self.choose_dictionary(items[0])
        super().write_data(items)

    def parquet_writer_options(self) -> dict[str, Any]:
        """The keyword arguments of pyarrow's ParquetWriter: dlt's, then ours."""

        options: dict[str, Any] = {
            "flavor": self.parquet_format.flavor,
            "version": self.parquet_format.version,
            "compression": self.parquet_format.compression,
            "data_page_size": self.parquet_format.data_page_size,
            "coerce_timestamps": self.parquet_format.coerce_timestamps,
            "allow_truncated_timestamps": self.parquet_format.allow_truncated_timestamps,
            "use_compliant_nested_type": self.parquet_format.use_compliant_nested_type,
            "write_page_index": self.parquet_format.write_page_index,
        }
        if Version(pa.__version__).major >= 21:
            options["use_content_defined_chunking"] = (
                self.parquet_format.use_content_defined_chunking
            )
        options["use_dictionary"] = self.use_dictionary
        return options

    def _create_writer(self, schema: Any) -> Any:

        return pq.ParquetWriter(self._f, schema, **self.parquet_writer_options())


class PlainParquetWriter(LakeParquetWriter):
    """No dictionary encoding at all (`false`)."""

    def choose_dictionary(self, first_batch: Any) -> bool | list[str]:
        return False


#: a writer per INGEST_PARQUET_DICTIONARY policy (`ingest.vocabulary.DictionaryPolicy`)
WRITERS: dict[DictionaryPolicy, type[ArrowToParquetWriter]] = {
    DictionaryPolicy.AUTO: LakeParquetWriter,
    DictionaryPolicy.TRUE: ArrowToParquetWriter,  # dlt's own: pyarrow's default, every column
    DictionaryPolicy.FALSE: PlainParquetWriter,
}


def use_lake_parquet_writer(policy: DictionaryPolicy) -> None:
    """Make dlt write Arrow data to Parquet with the given dictionary policy (a key of
    WRITERS), for every pipeline in this process. Idempotent."""
    WRITER_SPECS[ArrowToParquetWriter.writer_spec()] = WRITERS[policy]
