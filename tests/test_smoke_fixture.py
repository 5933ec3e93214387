from tests.conftest import read_lake_table


def test_postgres_table_lands_in_azurite(pg, azure_lake, monkeypatch):
    from ingest.config import JobConfig
    from tests.fixtures.jobs import run_task

    pg.execute("CREATE TABLE t (id int primary key, name text)")
    pg.execute("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 50) g")
    pg.use_as(monkeypatch, "pg_src")
    job = JobConfig("j1", True, "postgresql", "pg_src", "t", "FULL", schema_name=pg.name)
    result = run_task({"run_id": "r1", "job": job.to_dict(), "destination": azure_lake})
    assert result["status"] == "SUCCESS", result["error"]
    table = read_lake_table(azure_lake, "pg_src", "t")
    assert sorted(table.column("id").to_pylist()) == list(range(1, 51))
