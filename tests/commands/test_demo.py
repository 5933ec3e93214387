"""The README's first command: the demo, end to end, on an embedded SQLite source."""

from __future__ import annotations

import io
import sqlite3

from ingest.commands.demo import lake_listing, run_demo
from tests.conftest import read_lake_table


def test_demo_loads_everything_then_exactly_the_changes(tmp_path, monkeypatch):
    # this test reads the loads' own files: the runs do not compact (INGEST_COMPACT_LOADS=1 would
    # add a base per run)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "1000")
    out = io.StringIO()
    lake = tmp_path / "lake"

    code = run_demo(tmp_path / "demo", lake, out=out)

    assert code == 0, out.getvalue()
    db = sqlite3.connect(tmp_path / "demo" / "shop.db")
    counts = {
        t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("customers", "products", "orders", "order_items")
    }
    listing = {folder.split("/")[1]: (files, rows) for folder, files, rows in lake_listing(lake)}
    # FULL tables: two complete snapshots; INCREMENTAL: the first load plus exactly the changes
    assert listing["customers"] == (2, 2 * counts["customers"])
    assert listing["products"] == (2, 2 * counts["products"])
    assert listing["order_items"][1] == counts["order_items"]
    assert listing["orders"][1] == counts["orders"] + 40  # 40 orders changed after the first run
    landed = read_lake_table(lake.as_uri(), "demo_shop", "orders")
    refunded = {r["order_id"] for r in landed.to_pylist() if r["status"] == "refunded"}
    source_refunded = {
        r[0] for r in db.execute("SELECT order_id FROM orders WHERE status='refunded'")
    }
    assert refunded == source_refunded
    assert "what landed in" in out.getvalue()
    # the demo ends with a query over the lake's views: the five newest orders, as in the source
    text = out.getvalue()
    assert text.index("== python -m ingest query") > text.index("what landed in")
    newest = db.execute(
        "SELECT order_id, status FROM orders ORDER BY updated_at DESC, order_id LIMIT 5"
    ).fetchall()
    shown = text[text.index("== python -m ingest query") :].splitlines()[4:9]
    assert [tuple(line.split()[:2]) for line in shown] == [(str(i), s) for i, s in newest]
    # the query the demo suggests gives the source's numbers: orders is a current state by key
    from ingest.commands.demo import HINT_QUERY
    from ingest.views.duck import run_query

    by_status = run_query(lake.as_uri(), HINT_QUERY).rows
    source = db.execute("select status, count(*) from orders group by 1 order by 1").fetchall()
    assert [tuple(r) for r in by_status] == source
    assert run_query(lake.as_uri(), "select count(*) from demo_shop.orders").rows == [
        (counts["orders"],)
    ]


# --- the demo writes only into folders it created -------------------------------------------


def test_the_demo_refuses_a_folder_it_did_not_create(tmp_path):
    """A real lake (say, `dlt-ingest run`'s ./lake) given as the demo's lake: refused with
    exit 2 and the reason, before anything is written or deleted anywhere."""
    from tests.cli import clean_env, dlt_ingest

    lake = tmp_path / "lake"
    (lake / "erp" / "orders").mkdir(parents=True)
    loaded = lake / "erp" / "orders" / "1796000000.1.abc.parquet"
    loaded.write_bytes(b"PAR1 a real load")
    unrelated = lake / "notes.txt"
    unrelated.write_text("mine", encoding="utf-8")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    proc = dlt_ingest("demo", "--lake", "lake", env=clean_env(tmp_path), cwd=tmp_path)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"refusing to use {lake} as its lake: the folder is not empty" in proc.stderr
    assert "was not created by the demo (it has no .dlt-ingest-demo marker)" in proc.stderr
    assert "pass --lake with a new folder (default ./demo_lake)" in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing changed: no file gone, none added (not even the demo's source folder)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert loaded.read_bytes() == b"PAR1 a real load" and unrelated.read_text() == "mine"

    # the same for the source folder, and for a file given as a folder
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "shop.db").write_bytes(b"someone's database")
    proc = dlt_ingest(
        "demo",
        "--folder",
        "data",
        "--lake",
        "lake/notes.txt",
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "refusing to use" in proc.stderr and "as its source folder" in proc.stderr
    assert "is a file, not a folder" in proc.stderr
    assert (tmp_path / "data" / "shop.db").read_bytes() == b"someone's database"


def test_the_demo_reuses_its_own_folder_and_removes_only_what_it_wrote(tmp_path):
    from ingest.commands.demo import MARKER
    from tests.cli import clean_env, dlt_ingest

    lake = tmp_path / "demo_lake"
    (lake / "demo_shop" / "orders").mkdir(parents=True)
    (lake / MARKER).write_text("made by the demo", encoding="utf-8")
    stale = lake / "demo_shop" / "orders" / "stale.parquet"
    stale.write_bytes(b"an earlier demo's file")
    kept = lake / "my_notes.txt"  # put there by a person: not the demo's
    kept.write_text("keep me", encoding="utf-8")

    proc = dlt_ingest("demo", env=clean_env(tmp_path), cwd=tmp_path, timeout=600)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not stale.exists()
    assert kept.read_text(encoding="utf-8") == "keep me"
    assert (tmp_path / "demo_data" / MARKER).is_file()  # the source folder is marked too
    listing = {folder: rows for folder, _, rows in lake_listing(lake)}
    assert listing["demo_shop/customers"] == 2 * 1200  # two snapshots of this run only


def test_a_source_folder_of_an_earlier_demo_is_recognised(tmp_path):
    """Before the marker existed the demo wrote ./demo_data with exactly its three files:
    such a folder is the demo's; one more file, or another config, and it is not."""
    from ingest.commands.demo import CONFIG_CSV, claim_folders, refusal

    old = tmp_path / "demo_data"
    old.mkdir()
    (old / "demo_config.csv").write_text(CONFIG_CSV, encoding="utf-8")
    (old / "shop.db").write_bytes(b"old demo database")
    assert refusal(old, "source folder") is None
    (old / "mine.txt").write_text("x", encoding="utf-8")
    assert "refusing to use" in (refusal(old, "source folder") or "")
    (old / "mine.txt").unlink()
    (old / "demo_config.csv").write_text(CONFIG_CSV + "x,Y,sqlite,a,,b,FULL\n", encoding="utf-8")
    assert "refusing to use" in (refusal(old, "source folder") or "")
    # a lake is never adopted without the marker
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "demo_config.csv").write_text(CONFIG_CSV, encoding="utf-8")
    assert "refusing to use" in (refusal(lake, "lake") or "")
    claim_folders({"source folder": tmp_path / "new"})
    assert (tmp_path / "new" / ".dlt-ingest-demo").is_file()
