"""(a) The hand-written reference: ConnectorX reads the table into Arrow, pyarrow writes Parquet."""

import sys

import connectorx as cx
import pyarrow.parquet as pq

conn, table, out = sys.argv[1], sys.argv[2], sys.argv[3]
data = cx.read_sql(conn, f"SELECT * FROM {table}", return_type="arrow")
pq.write_table(data, out)
print(data.num_rows)
