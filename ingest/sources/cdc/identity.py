"""Whether a table can be read by CDC, and with which key: `wal_level = logical`, a UTF-8
database, and a replica identity whose deletes carry the job's key (the primary key, a replica
identity index, or REPLICA IDENTITY FULL). `validate --check-connections` and every CDC run ask;
the error says which is missing and the statement that fixes it."""

from __future__ import annotations

from typing import Any

from ingest.config.model import JobConfig
from ingest.errors import JobError

IDENTITY_SQL = (
    "SELECT c.relreplident, "
    "ARRAY(SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
    "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND "
    "i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)), "
    "ARRAY(SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
    "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND "
    "i.indisreplident) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND c.relname = %s"
)


GENERATED_SQL = (
    "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
    "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '' ORDER BY a.attnum"
)


def table_schema(connection: Any, job: JobConfig) -> str:
    """The schema of the job's table: `schema_name`, else where the connection's search_path
    finds the table (as an unqualified name in a query would); `public` if it finds none."""
    if job.schema_name:
        return job.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(quote_ident(%s))",
            (job.table_name,),
        )
        found = cursor.fetchone()
    return str(found[0]) if found else "public"


def check_source(connection: Any, job: JobConfig) -> tuple[str, ...]:
    """The job's key, if the source and the table can be read by CDC (a DB-API connection)."""
    schema = table_schema(connection, job)
    with connection.cursor() as cursor:
        cursor.execute("SHOW wal_level")
        (wal_level,) = cursor.fetchone()
        cursor.execute("SHOW server_encoding")
        (encoding,) = cursor.fetchone()
        cursor.execute(IDENTITY_SQL, (schema, job.table_name))
        found = cursor.fetchone()
        cursor.execute(GENERATED_SQL, (schema, job.table_name))
        generated = [str(r[0]) for r in cursor.fetchall()]
    key = identity_key(job, str(wal_level), str(encoding), found, schema)
    if generated:
        raise JobError(
            f"table {schema}.{job.table_name} has generated column(s) {', '.join(generated)}: "
            "PostgreSQL's logical replication does not send their values (before version 18), "
            "so CDC cannot land them exactly; load the table FULL or INCREMENTAL, or make the "
            "column(s) ordinary ones"
        )
    return key


def identity_key(
    job: JobConfig, wal_level: str, encoding: str, found: tuple | None, schema: str = "public"
) -> tuple[str, ...]:
    """The job's key, if the table's replica identity carries it (see `CdcRead.check_source`)."""
    where = f"table {schema}.{job.table_name}"
    if wal_level != "logical":
        raise JobError(
            f"source {job.source_name!r} has wal_level = {wal_level}: CDC needs wal_level = "
            "logical (server parameter; on Azure flexible server: wal_level = LOGICAL in the "
            "server parameters, then restart), README: CDC"
        )
    if encoding.upper() not in ("UTF8", "SQL_ASCII"):
        raise JobError(f"CDC reads UTF8 databases; {job.source_name!r} is {encoding}")
    if found is None:
        raise JobError(f"{where} not found in source {job.source_name!r}")
    identity, primary_key, index_key = found[0], list(found[1] or ()), list(found[2] or ())
    key = tuple(job.primary_key) or tuple(primary_key)
    if not key:
        raise JobError(
            f"{where} has no primary key: declare primary_key in "
            f"{job.origin or 'the config'} and give the table REPLICA IDENTITY FULL (ALTER TABLE "
            "... REPLICA IDENTITY FULL), so that its deletes carry the key"
        )
    carried = {"f": None, "d": primary_key, "i": index_key}.get(identity, [])
    if identity == "f":
        return key
    if not carried or not set(key) <= set(carried):
        what = {"d": "its primary key", "i": "its replica identity index", "n": "nothing"}
        raise JobError(
            f"the deletes of {where} carry "
            f"{what.get(identity, 'nothing')} ({', '.join(carried or []) or 'no column'}), not "
            f"the job's key ({', '.join(key)}): give the table a primary key on the key, or "
            "REPLICA IDENTITY FULL (ALTER TABLE ... REPLICA IDENTITY FULL)"
        )
    return key
