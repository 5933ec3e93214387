"""Changing a small text file in the lake atomically, whoever else changes it at the same time.

`update_text(dest, parts, change)` replaces the file with `change(old)`: on blob storage by a
write conditional on the ETag it read (or on the blob not existing yet), retried on the newer
text when another writer came first; on a local lake under an exclusive flock on a lock file,
with an atomic replace. No change is ever lost. Used by the audit (`ingest.audit`).
"""

from __future__ import annotations

import contextlib
import fcntl
import mimetypes
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from ingest.lake.destination import Destination
from ingest.lake.layout import LEASE_DIR, LOCK_FILE_SUFFIX, SEPARATOR

#: local lakes: where the lock files of `update_text` and of the job leases live
LOCK_DIR = LEASE_DIR
#: how long a conditional blob update keeps trying when other writers keep winning
UPDATE_DEADLINE_S = 120.0


def update_text(
    dest: Destination,
    parts: tuple[str, ...],
    change: Callable[[str | None], str | None],
) -> None:
    """Atomically replace the text file at `parts` under the lake root with `change(old)`,
    where `old` is None for a missing file and `change` returns None to write nothing.

    Concurrent updaters never lose each other's changes: on blob storage the write is
    conditional on the ETag read (or on the blob not existing yet) and `change` runs again on
    the newer text when another writer got there first; on a local lake an exclusive flock on
    a lock file in `LOCK_DIR` covers the read and the atomic replace. `change` may run more
    than once."""
    if dest.protocol == "file":
        lock = dest.path(LOCK_DIR, SEPARATOR.join(parts) + LOCK_FILE_SUFFIX)
        _update_local(dest.path(*parts), lock, change)
    else:
        _update_blob(dest.container_client().get_blob_client(dest.blob_name(*parts)), change)


def _update_local(path: str, lock_path: str, change: Callable[[str | None], str | None]) -> None:

    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for one read and one write, then released
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                old: str | None = handle.read()
        except FileNotFoundError:
            old = None
        new = change(old)
        if new is None:
            return
        replace_file(path, new)


def replace_file(path: str, text: str) -> None:
    """Write `text` to the local file `path` atomically (a scratch file renamed over it); the
    scratch file never outlives a failure (a full disk, a read-only file system)."""
    scratch = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(scratch, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(scratch)
        raise


def _update_blob(blob: Any, change: Callable[[str | None], str | None]) -> None:
    # the Azure SDK: only for blob-storage lakes
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )
    from azure.storage.blob import ContentSettings

    deadline = time.monotonic() + UPDATE_DEADLINE_S
    attempt = 0
    while True:
        try:
            download = blob.download_blob()
            etag: str | None = download.properties.etag
            old: str | None = download.readall().decode("utf-8")
        except ResourceNotFoundError:
            etag, old = None, None
        new = change(old)
        if new is None:
            return
        kind = mimetypes.guess_type(blob.blob_name)[0] or "text/plain"
        settings = ContentSettings(content_type=f"{kind}; charset=utf-8")
        try:
            if etag is None:
                blob.upload_blob(new.encode("utf-8"), overwrite=False, content_settings=settings)
            else:
                blob.upload_blob(
                    new.encode("utf-8"),
                    overwrite=True,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    content_settings=settings,
                )
            return
        except (ResourceModifiedError, ResourceExistsError):
            attempt += 1  # another writer came first: read its version and merge again
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{blob.blob_name}: other writers changed it {attempt} times in a row for "
                    f"{UPDATE_DEADLINE_S:.0f} s; nothing was lost, try again"
                ) from None
            time.sleep(random.uniform(0, min(1.0, 0.02 * 2 ** min(attempt, 6))))  # noqa: S311
