"""The split load's commit moves its chunks' staged files into the table (issue 29):
`.venv/bin/python bench/split_staging.py [--files 8] [--mb 32]`.

Times `ingest.lake.loads.move_into_load` for `--files` staged files of `--mb` MB each, on a
file:// lake (a rename) and on Azurite (a server-side copy and a delete; needs
INGEST_TEST_AZURITE_CONNECTION_STRING, `python3 tasks.py services` prints it). Numbers only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOAD_ID = "1765000000.5"


def staged_names(files: int) -> list[str]:
    return [f"{LOAD_ID}.c000abench00x{i:04d}.parquet" for i in range(files)]


def time_moves(dest, files: int, size_mb: int) -> float:
    from ingest.lake.loads import move_into_load, staged_files

    fs = dest.filesystem()
    payload = os.urandom(size_mb * 2**20)
    for name in staged_names(files):
        with fs.open(dest.path("bench", "_chunks", "orders", name), "wb") as handle:
            handle.write(payload)
    staged = staged_files(dest, "bench", "orders", LOAD_ID, fs)
    assert len(staged) == files, staged
    started = time.perf_counter()
    for path in staged:
        move_into_load(dest, path, fs)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=int, default=32)
    args = parser.parse_args(argv)
    from ingest.lake.destination import Destination

    total = args.files * args.mb
    with tempfile.TemporaryDirectory(prefix="split-staging-") as tmp:
        seconds = time_moves(Destination.from_url(Path(tmp).as_uri()), args.files, args.mb)
        print(f"file://: {args.files} files, {total} MB moved in {seconds:.3f} s")
    connection = os.environ.get("INGEST_TEST_AZURITE_CONNECTION_STRING")
    if not connection:
        print("Azurite: skipped (no INGEST_TEST_AZURITE_CONNECTION_STRING)")
        return 0
    from azure.storage.blob import BlobServiceClient

    container = f"bench-{uuid.uuid4().hex[:8]}"
    service = BlobServiceClient.from_connection_string(connection)
    service.create_container(container)
    try:
        env = {"AZURE_STORAGE_CONNECTION_STRING": connection}
        dest = Destination.from_url(f"az://{container}", env=env)
        seconds = time_moves(dest, args.files, args.mb)
        print(
            f"Azurite: {args.files} files, {total} MB moved in {seconds:.2f} s "
            f"({total / seconds:,.0f} MB/s, {seconds / args.files * 1000:.0f} ms per file)"
        )
    finally:
        service.delete_container(container)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
