"""The README's first command: the demo, end to end, on an embedded SQLite source."""

from __future__ import annotations

import io
import sqlite3

from ingest.commands.demo import lake_listing, run_demo
from tests.conftest import read_lake_table


def test_demo_loads_everything_then_exactly_the_changes(tmp_path):
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
