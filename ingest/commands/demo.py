"""`python -m ingest demo`: the whole product on a laptop, no servers, no cloud.

Builds a small shop database in SQLite (customers, products, orders, order_items: a few
thousand rows with unicode names, decimals, timestamps and NULLs), writes a job config and a
secrets file for it, runs the jobs into `./demo_lake`, adds and changes orders, runs again (the
incremental jobs pick up exactly the new rows), and prints what landed.

Safe by default: the demo writes only into folders it created. Each one it uses (the source
folder, `./demo_data`, and the lake, `./demo_lake`) is claimed first: a new or empty folder
gets a marker file (`.dlt-ingest-demo`); a folder with the marker is the demo's own; any other
non-empty folder (a real lake, a folder of someone's files) is refused with exit code 2 and a
message saying why, before anything is written or deleted. On a second run the demo removes
only what its own runs wrote there (the lake's `demo_shop/` and `metadata/` folders; the
source folder's three files are rewritten).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import random
import shlex
import shutil
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ingest.errors import RequestError

SOURCE = "demo_shop"
#: the file that marks a folder as the demo's own (created by the demo; nothing else has it)
MARKER = ".dlt-ingest-demo"
MARKER_TEXT = (
    "This folder was created by `dlt-ingest demo`. The demo may delete what it wrote here "
    "(demo_shop/, metadata/, shop.db, demo_config.csv, secrets.toml) when it runs again.\n"
)
#: what the demo's runs write into its lake (the demo source's dataset and the run metadata)
LAKE_CONTENT = (SOURCE, "metadata")
DEFAULT_FOLDER = "demo_data"
DEFAULT_LAKE = "demo_lake"
FIRST_NAMES = [
    "Ana",
    "Björn",
    "Chloé",
    "Dmitri",
    "Eun-ji",
    "Fatima",
    "Giulia",
    "Hiro",
    "Ingrid",
    "José",
    "Kwame",
    "Léa",
    "Mateus",
    "Nadia",
    "Oğuz",
    "Priya",
    "Quentin",
    "Rūta",
    "Søren",
    "Zoë",
]
LAST_NAMES = [
    "Álvarez",
    "Brown",
    "Čech",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Horváth",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "López",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Petrović",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Wang",
]
CITIES = [
    "Lisboa",
    "München",
    "Kraków",
    "São Paulo",
    "Zürich",
    "Montréal",
    "Reykjavík",
    "Osaka",
    "New York",
    "Cape Town",
]
PRODUCTS = [
    "Espresso beans",
    "Green tea",
    "Mug",
    "Grinder",
    "Kettle",
    "Filter papers",
    "Scale",
    "French press",
    "Milk frother",
    "Tamper",
]

CONFIG_CSV = """\
job_id,enabled,source_type,source_name,schema_name,table_name,load_type,watermark_column,primary_key,initial_watermark,schedule,owner,notes
demo-01,Y,sqlite,demo_shop,,customers,FULL,,customer_id,,DAILY,data-team,full snapshot every run
demo-02,Y,sqlite,demo_shop,,products,FULL,,product_id,,DAILY,data-team,
demo-03,Y,sqlite,demo_shop,,orders,INCREMENTAL,updated_at,order_id,2020-01-01T00:00:00,DAILY,data-team,changed orders by updated_at
demo-04,Y,sqlite,demo_shop,,order_items,INCREMENTAL,item_id,item_id,,DAILY,data-team,append-only by id
"""  # noqa: E501


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.cli import command_for_hints
    from ingest.commands.core import SUMMARY_HEADERS, execute_run, summary_rows
    from ingest.commands.output import NULL, show_table
    from ingest.settings import Settings
    from ingest.views.duck import run_query

    return SimpleNamespace(
        NULL=NULL,
        SUMMARY_HEADERS=SUMMARY_HEADERS,
        Settings=Settings,
        command_for_hints=command_for_hints,
        execute_run=execute_run,
        run_query=run_query,
        show_table=show_table,
        summary_rows=summary_rows,
    )


def _ts(base: dt.datetime, rng: random.Random, days: int) -> str:
    return (base + dt.timedelta(seconds=rng.randrange(days * 86400))).isoformat(sep=" ")


def build_shop(path: Path, seed: int = 42) -> dict[str, int]:
    """Create the demo database; returns rows per table."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    base = dt.datetime(2024, 1, 1)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, first_name TEXT NOT NULL,
                last_name TEXT NOT NULL, email TEXT, city TEXT, created_at TIMESTAMP NOT NULL);
            CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                unit_price NUMERIC(10, 2) NOT NULL, active BOOLEAN NOT NULL);
            CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                status TEXT NOT NULL, total NUMERIC(12, 2) NOT NULL, note TEXT,
                created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
            CREATE TABLE order_items (item_id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL,
                product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
                unit_price NUMERIC(10, 2) NOT NULL);
            """
        )
        customers = [
            (
                i,
                rng.choice(FIRST_NAMES),
                rng.choice(LAST_NAMES),
                None if i % 17 == 0 else f"customer{i}@example.com",
                rng.choice(CITIES),
                _ts(base, rng, 365),
            )
            for i in range(1, 1201)
        ]
        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?)", customers)
        prices = {i: Decimal(rng.randrange(199, 19999)) / 100 for i in range(1, len(PRODUCTS) + 1)}
        db.executemany(
            "INSERT INTO products VALUES (?,?,?,?)",
            [(i, name, str(prices[i]), i % 7 != 0) for i, name in enumerate(PRODUCTS, start=1)],
        )
        item_id = 0
        for order_id in range(1, 3001):
            created = base + dt.timedelta(seconds=rng.randrange(365 * 86400))
            items = []
            for _ in range(rng.randint(1, 3)):
                item_id += 1
                product = rng.randint(1, len(PRODUCTS))
                items.append((item_id, order_id, product, rng.randint(1, 5), str(prices[product])))
            total = sum(Decimal(p) * q for _, _, _, q, p in items)
            db.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?)",
                (
                    order_id,
                    rng.randint(1, 1200),
                    rng.choice(["new", "paid", "shipped"]),
                    str(total),
                    None if order_id % 5 else "gift wrap ✓",
                    created.isoformat(sep=" "),
                    created.isoformat(sep=" "),
                ),
            )
            db.executemany("INSERT INTO order_items VALUES (?,?,?,?,?)", items)
    return table_counts(path)


def change_shop(path: Path, seed: int = 7) -> dict[str, int]:
    """The second day: 150 new orders and 40 status changes. Returns rows the incremental
    jobs must pick up, per table."""
    rng = random.Random(seed)
    now = dt.datetime(2025, 1, 2, 9, 30)
    with sqlite3.connect(path) as db:
        next_order = db.execute("SELECT MAX(order_id) FROM orders").fetchone()[0] + 1
        next_item = db.execute("SELECT MAX(item_id) FROM order_items").fetchone()[0] + 1
        changed = [
            r[0] for r in db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 40")
        ]
        for order_id in changed:
            db.execute(
                "UPDATE orders SET status = 'refunded', updated_at = ? WHERE order_id = ?",
                ((now + dt.timedelta(minutes=order_id)).isoformat(sep=" "), order_id),
            )
        for offset in range(150):
            when = (now + dt.timedelta(hours=1, minutes=offset)).isoformat(sep=" ")
            db.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?)",
                (next_order + offset, rng.randint(1, 1200), "new", "9.99", None, when, when),
            )
            db.execute(
                "INSERT INTO order_items VALUES (?,?,?,?,?)",
                (next_item + offset, next_order + offset, 1, 1, "9.99"),
            )
    return {"orders": 190, "order_items": 150}


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {
            name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]  # noqa: S608 - fixed names
            for name in ("customers", "products", "orders", "order_items")
        }


def write_demo_project(folder: Path) -> tuple[Path, Path]:
    """Config CSV and secrets file of the demo source; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "demo_config.csv"
    config.write_text(CONFIG_CSV, encoding="utf-8")
    secrets = folder / "secrets.toml"
    db_path = (folder / "shop.db").resolve().as_posix()
    secrets.write_text(f'[sources.{SOURCE}]\npath = "{db_path}"\n', encoding="utf-8")
    return config, secrets


def lake_listing(lake: Path) -> list[tuple[str, int, int]]:
    """(table folder, files, rows) for every table of the demo source in the lake."""
    # pyarrow: only when the demo reads its lake back
    import pyarrow.parquet as pq

    out = []
    root = lake / SOURCE
    for table_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = sorted(table_dir.rglob("*.parquet"))
        if files:
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            out.append((str(table_dir.relative_to(lake)), len(files), rows))
    return out


def refusal(folder: Path, role: str) -> str | None:
    """Why the demo may not use `folder` as its `role` (None: it may: the folder is new,
    empty, or marked as the demo's own)."""
    option = "--lake" if role == "lake" else "--folder"
    default = DEFAULT_LAKE if role == "lake" else DEFAULT_FOLDER
    if folder.exists() and not folder.is_dir():
        return (
            f"demo: {folder.resolve()} is a file, not a folder; give the demo's {role} "
            f"another place with {option} DIR (default ./{default})"
        )
    if (folder / MARKER).is_file() or not folder.exists() or not any(folder.iterdir()):
        return None
    if role != "lake" and written_by_an_earlier_demo(folder):
        return None
    return (
        f"demo: refusing to use {folder.resolve()} as its {role}: the folder is not empty "
        f"and was not created by the demo (it has no {MARKER} marker). The demo replaces "
        f"what it writes into its {role} on every run, so it only uses a new or empty "
        f"folder, or one it created before. Nothing was changed; pass {option} with a new "
        f"folder (default ./{default})"
    )


#: what the demo writes into its source folder (before markers existed, too)
SOURCE_FILES = frozenset({"shop.db", "demo_config.csv", "secrets.toml"})


def written_by_an_earlier_demo(folder: Path) -> bool:
    """A source folder an earlier version of the demo (which wrote no marker) made: nothing in
    it but the demo's files, and its job configuration word for word the demo's."""
    names = {p.name for p in folder.iterdir()}
    config = folder / "demo_config.csv"
    return (
        names <= SOURCE_FILES
        and config.is_file()
        and config.read_text(encoding="utf-8", errors="replace") == CONFIG_CSV
    )


def claim_folders(folders: dict[str, Path]) -> None:
    """Make each folder (role -> path) the demo's own, or refuse them all: RequestError (exit
    2) saying why, before anything is written or deleted."""
    problems = [text for role, path in folders.items() if (text := refusal(path, role))]
    if problems:
        raise RequestError("\n".join(problems))
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MARKER).is_file():
            (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def clear_demo_lake(lake: Path) -> None:
    """Remove what earlier demo runs wrote into the demo's (marked) lake, nothing else."""
    assert (lake / MARKER).is_file(), "only the demo's own lake is cleared"
    for name in LAKE_CONTENT:
        path = lake / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)


def run_demo(folder: Path, lake: Path, out: Any = sys.stdout) -> int:

    engine = _engine()
    claim_folders({"source folder": folder, "lake": lake})
    clear_demo_lake(lake)
    db = folder / "shop.db"
    counts = build_shop(db)
    config, secrets = write_demo_project(folder)
    out.write(f"demo source: {db} {counts}\n")
    settings = dataclasses.replace(engine.Settings.from_env(), secrets_file=secrets)
    destination = lake.resolve().as_uri()
    exit_code = 0
    for title in (
        "first run (full + initial incremental)",
        "second run (after new and changed orders)",
    ):
        if title.startswith("second"):
            expected = change_shop(db)
            out.write(f"\nchanged the source: incremental jobs should pick up {expected}\n")
        summary, results = engine.execute_run(
            settings, config_path=str(config), destination=destination
        )
        out.write(f"\n== {title}\n")
        engine.show_table(engine.SUMMARY_HEADERS, engine.summary_rows(results), out)
        if summary.jobs_failed:
            exit_code = 1
    out.write("\n== what landed in " + str(lake) + "\n")
    engine.show_table(("table folder", "files", "rows"), lake_listing(lake), out)
    out.write(f"audit: {summary.audit_path}\n")
    query_lake(destination, DEMO_QUERY, out)
    out.write("\n== next: the same commands on the demo's files (from any folder)\n")
    out.write("".join(f"  {line}\n" for line in next_steps(config, secrets, destination)))
    return exit_code


#: the demo's last step: the lake read as tables (the views every run writes)
DEMO_QUERY = (
    "select order_id, status, total, updated_at, _load_id, _load_date "
    "from demo_shop.orders order by updated_at desc, order_id limit 5"
)


def query_lake(destination: str, sql: str, out: Any) -> None:
    """`dlt-ingest query SQL`: the views, then the result (NULL shown as NULL)."""
    engine = _engine()
    result = engine.run_query(destination, sql)
    out.write(f'\n== python -m ingest query "{sql}"\n(views: {", ".join(result.views)})\n')
    engine.show_table(result.columns, result.rows, out, null=engine.NULL)


HINT_QUERY = "select status, count(*) as orders from demo_shop.orders group by 1 order by 1"


def next_steps(
    config: Path, secrets: Path, destination: str, command: str | None = None
) -> list[str]:
    """Commands that work on what the demo wrote: its config, its secrets file (not
    .dlt/secrets.toml: INGEST_SECRETS_FILE points at it) and its lake, with absolute paths."""
    engine = _engine()
    cmd = command or engine.command_for_hints()
    env = f"INGEST_SECRETS_FILE={shlex.quote(str(secrets.resolve()))}"
    conf = f"--config {shlex.quote(str(config.resolve()))}"
    dest = f"--destination {shlex.quote(destination)}"
    return [
        f"{env} {cmd} validate {conf} --check-connections",
        f"{cmd} plan {conf} {dest}",
        f"{env} {cmd} run {conf} {dest}",
        f"{cmd} history {dest}",
        f"{cmd} query {dest} {shlex.quote(HINT_QUERY)}",
    ]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole product on an embedded SQLite source into ./demo_lake",
        description="Build a small SQLite shop database, load it into a local lake, change it, "
        "load again incrementally, and print what landed. Needs no server and no cloud. "
        f"The demo writes only into folders it created (marked with a {MARKER} file): a new "
        "or empty folder is used, a folder the demo created before is reused (only what the "
        "demo wrote there is replaced), any other non-empty folder is refused (exit 2).",
    )
    parser.add_argument(
        "--folder",
        default=DEFAULT_FOLDER,
        metavar="DIR",
        help=f"where the demo source goes (default ./{DEFAULT_FOLDER}; new, empty or the "
        "demo's own)",
    )
    parser.add_argument(
        "--lake",
        default=DEFAULT_LAKE,
        metavar="DIR",
        help=f"the demo's lake folder (default ./{DEFAULT_LAKE}, not ./lake where `run` "
        "writes; new, empty or the demo's own)",
    )
    parser.set_defaults(func=lambda args: run_demo(Path(args.folder), Path(args.lake)))


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - convenience
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["demo", *(argv or [])])
    return int(args.func(args))
