"""Change data capture from PostgreSQL: logical replication with the built-in `pgoutput` plugin.

- `pgoutput`: the protocol's messages, decoded from bytes (no database needed);
- `names`: a job's slot and publication names;
- `replication`: the slot and publication (create with an exported snapshot, stream, confirm,
  status, drop) over psycopg2's LogicalReplicationConnection;
- `changes`: decoded messages as change rows (insert, update, delete, truncate) up to a bound;
- `rows`: change rows as the lake's Arrow tables, typed exactly as a FULL load types them.
"""
