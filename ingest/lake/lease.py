"""One writer per job: an exclusive, self-expiring lease on the job's lake table.

Every task that writes a job's table (a plain run, a full refresh, a backfill range) holds the
job's lease for its whole load: from the clean-up of incomplete loads to the completion marker.
A second writer of the same job waits (`INGEST_LEASE_WAIT_S`), then gives up with `LeaseBusy`,
which names the holder (run id, task, host, since when). A waiter whose holder runs the very
same task waits longer (`INGEST_LEASE_SAME_TASK_WAIT_S`): when the holder finishes, the waiter
finds the load already committed and reports it (`ingest.lake.ledger`).

- Blob storage (ADLS Gen2, Azure Blob, Azurite): a blob lease (azure-storage-blob
  `BlobLeaseClient`) on `<lake>/metadata/leases/<dataset>__<table>.lease`, taken for
  `INGEST_LEASE_PERIOD_S` seconds (15..60, the service's limits) and renewed by a background
  thread every third of that period. A holder that dies stops renewing: its lease expires by
  itself within one period. The holder's identity is the blob's metadata.
- `file://` lakes: an exclusive `fcntl.flock` on `<lake>/metadata/leases/<name>.lock`; the
  operating system releases it when the holder's process ends, however it ends. The holder's
  identity is written into the file. (flock is reliable on local disks; on network file systems
  use a blob storage lake.)

Before it commits a load, a holder calls `check()`: on blob storage that renews the lease at
once (a full period ahead) and raises `LeaseLost` if another writer took it over, which can only
happen after this process stalled for longer than the lease period.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

from ingest.errors import RetriableJobError
from ingest.lake.atomic import replace_file
from ingest.lake.commits import CommitLog
from ingest.lake.destination import Destination
from ingest.lake.layout import (
    COMMIT_LOG_SUFFIX,
    LEASE_BLOB_SUFFIX,
    LEASE_DIR,
    LOCK_FILE_SUFFIX,
    lease_name,
)

log = logging.getLogger(__name__)

#: blob leases and local lock files, next to the audit
#: the service's limits for a finite blob lease
MIN_PERIOD_S, MAX_PERIOD_S = 15, 60
#: how often a waiter tries again
POLL_S = {"file": 0.2, "az": 1.0}
#: how often a waiter logs that it is still waiting
WAIT_LOG_EVERY_S = 30.0


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a job's lease; shown to the writers that have to wait."""

    run_id: str
    task: str
    host: str
    pid: int
    since: str

    @classmethod
    def me(cls, run_id: str, task: str) -> Holder:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(run_id, task, socket.gethostname(), os.getpid(), now)

    def describe(self) -> str:
        return (
            f"run {self.run_id} ({self.task}) on host {self.host}, process {self.pid}, "
            f"since {self.since}"
        )

    def to_metadata(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_metadata(cls, data: Any) -> Holder | None:
        try:
            return cls(
                str(data["run_id"]),
                str(data["task"]),
                str(data["host"]),
                int(data["pid"]),
                str(data["since"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


class LeaseBusy(RetriableJobError):
    """Another writer holds the job's lease and did not release it in time."""

    def __init__(self, name: str, holder: Holder | None, waited_s: float):
        self.holder = holder
        who = holder.describe() if holder else "a writer that has not said who it is (yet)"
        super().__init__(
            f"another writer is loading {name}: {who}; waited {waited_s:.0f} s for it "
            "(INGEST_LEASE_WAIT_S). Nothing was written; run the job again when it has finished"
        )


class LeaseLost(RetriableJobError):
    """This writer's lease expired or was taken over before its load committed."""


class JobLease(ABC):
    """An exclusive lease on one job's table. Use as a context manager:

    with lease_for(dest, name, holder, ...) as lease:  # waits, or raises LeaseBusy
        ...
        lease.check()   # raises LeaseLost
    """

    def __init__(self, name: str, holder: Holder, wait_s: float, same_task_wait_s: float):
        self.name = name
        self.holder = holder
        self.wait_s = wait_s
        self.same_task_wait_s = same_task_wait_s

    def __enter__(self) -> JobLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease, waiting while someone else holds it (see module doc)."""
        started = time.monotonic()
        last_log = started
        logged = False
        while True:
            if self._try_acquire():
                if logged:
                    log.info(
                        "lease on %s acquired after %.1f s", self.name, time.monotonic() - started
                    )
                return
            holder = self._current_holder()
            waited = time.monotonic() - started
            same_task = holder is not None and (holder.run_id, holder.task) == (
                self.holder.run_id,
                self.holder.task,
            )
            limit = self.same_task_wait_s if same_task else self.wait_s
            if waited >= limit:
                raise LeaseBusy(self.name, holder, waited)
            if not logged or time.monotonic() - last_log >= WAIT_LOG_EVERY_S:
                log.warning(
                    "waiting for the lease on %s, held by %s (up to %.0f s)",
                    self.name,
                    holder.describe() if holder else "another writer",
                    limit,
                )
                logged, last_log = True, time.monotonic()
            time.sleep(min(self.poll_s, max(0.0, limit - waited)))

    @property
    @abstractmethod
    def poll_s(self) -> float: ...

    @abstractmethod
    def _try_acquire(self) -> bool:
        """Take the lease if it is free; False when someone else holds it."""

    @abstractmethod
    def _current_holder(self) -> Holder | None:
        """Who holds the lease now (None when unknown)."""

    @abstractmethod
    def check(self) -> None:
        """Raise LeaseLost unless this writer still holds the lease."""

    @abstractmethod
    def release(self) -> None:
        """Give the lease up (idempotent)."""

    @abstractmethod
    def read_log(self) -> CommitLog | None:
        """The table's commit log as this holder found it (None: the table has none yet)."""

    @abstractmethod
    def write_log(self, log: CommitLog) -> None:
        """Replace the table's commit log, only while this writer holds the lease: the storage
        refuses the write to anyone else (LeaseLost), whatever the clocks say."""


class FileLease(JobLease):
    """`fcntl.flock` on a lock file in a local lake (see module doc)."""

    poll_s = POLL_S["file"]

    def __init__(
        self, path: str, name: str, holder: Holder, wait_s: float, same_task_wait_s: float
    ):
        super().__init__(name, holder, wait_s, same_task_wait_s)
        self.path = path
        self._fd: int | None = None

    def _try_acquire(self) -> bool:

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder.to_metadata()).encode(), 0)
        self._fd = fd
        return True

    def _current_holder(self) -> Holder | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return Holder.from_metadata(json.loads(handle.read() or "null"))
        except (OSError, ValueError):
            return None  # being rewritten by a new holder right now

    def check(self) -> None:
        if self._fd is None:
            raise LeaseLost(f"the lease on {self.name} is not held")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the descriptor releases the flock

    @property
    def log_path(self) -> str:
        return log_path_beside(self.path)

    def read_log(self) -> CommitLog | None:
        self.check()
        return read_local_log(self.log_path)

    def write_log(self, log: CommitLog) -> None:
        self.check()  # under the flock nobody else can write it: the OS lock is the fence
        replace_file(self.log_path, log.to_text())


@cache
def _azure() -> SimpleNamespace:
    """The Azure SDK's parts the blob lease uses: the one lazy import of it here."""
    # the Azure SDK: only for blob-storage lakes
    import azure.core
    import azure.core.exceptions
    import azure.storage.blob

    return SimpleNamespace(core=azure.core, errors=azure.core.exceptions, blob=azure.storage.blob)


class BlobLease(JobLease):
    """A renewed blob lease (see module doc)."""

    poll_s = POLL_S["az"]

    def __init__(
        self,
        blob: Any,
        name: str,
        holder: Holder,
        wait_s: float,
        same_task_wait_s: float,
        period_s: int,
    ):
        super().__init__(name, holder, wait_s, same_task_wait_s)
        if not MIN_PERIOD_S <= period_s <= MAX_PERIOD_S:
            raise ValueError(f"lease period {period_s} s is outside {MIN_PERIOD_S}..{MAX_PERIOD_S}")
        self.blob = blob
        self.period_s = period_s
        self._lease: Any = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost: str | None = None
        #: the lease blob's ETag as this holder last wrote or read it (the commit's condition)
        self._etag: str | None = None

    def _try_acquire(self) -> bool:
        azure = _azure()
        try:  # a lease needs an existing blob
            self.blob.upload_blob(b"", overwrite=False)
        except azure.errors.ResourceExistsError:
            pass
        except azure.errors.HttpResponseError as exc:
            if exc.status_code != 412:  # 412: exists and is leased by someone else
                raise
        lease = azure.blob.BlobLeaseClient(self.blob)
        try:
            lease.acquire(lease_duration=self.period_s)
        except azure.errors.HttpResponseError as exc:
            if exc.status_code == 409:  # LeaseAlreadyPresent
                return False
            raise
        self._lease = lease
        # a new holder changes the blob (its metadata): the ETag every earlier holder's
        # commit is conditional on is gone, so a stalled writer that wakes up cannot commit
        written = self.blob.set_blob_metadata(self.holder.to_metadata(), lease=lease)
        self._etag = written.get("etag")
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._keep_renewing, name=f"lease-{self.name}", daemon=True
        )
        self._renewer.start()
        return True

    def _keep_renewing(self) -> None:
        while not self._stop.wait(self.period_s / 3):
            try:
                self._lease.renew()
            except Exception as exc:
                self._lost = f"{type(exc).__name__}: {exc}"
                log.error("the lease on %s could not be renewed: %s", self.name, self._lost)
                return

    def _current_holder(self) -> Holder | None:
        try:
            return Holder.from_metadata(self.blob.get_blob_properties().metadata)
        except _azure().errors.ResourceNotFoundError:
            return None

    def check(self) -> None:
        if self._lease is None:
            raise LeaseLost(f"the lease on {self.name} is not held")
        if self._lost is None:
            try:
                self._lease.renew()
            except Exception as exc:
                self._lost = f"{type(exc).__name__}: {exc}"
        if self._lost is not None:
            raise LeaseLost(
                f"the lease on {self.name} was lost before the load committed "
                f"({self._lost.splitlines()[0][:200]}); this process stalled for longer than "
                f"the lease period ({self.period_s} s). Nothing was committed; run it again"
            )

    def read_log(self) -> CommitLog | None:
        self.check()
        download = self.blob.download_blob(lease=self._lease)
        text = download.readall()
        self._etag = download.properties.etag
        return CommitLog.from_text(text)

    def write_log(self, log: CommitLog, *, retry: bool = True) -> None:
        """The fenced commit: the lease blob is rewritten with this holder's lease id and on
        the condition that nobody changed it since this holder last saw it (its ETag). A
        writer whose lease expired, was broken or was taken over gets 412 from the storage."""
        azure = _azure()
        if self._lease is None:
            raise LeaseLost(f"the lease on {self.name} is not held")
        try:
            written = self.blob.upload_blob(
                log.to_text().encode("utf-8"),
                overwrite=True,
                lease=self._lease,
                metadata=self.holder.to_metadata(),
                etag=self._etag,
                match_condition=azure.core.MatchConditions.IfNotModified,
            )
        except azure.errors.HttpResponseError as exc:
            if exc.status_code not in (409, 412):
                raise
            if retry and self._renewed_after_expiry(exc):  # stalled; nobody took the job
                return self.write_log(log, retry=False)
            reason = getattr(exc, "error_code", None) or f"HTTP {exc.status_code}"
            self._lost = f"the commit was refused ({reason})"
            raise LeaseLost(
                f"the lease on {self.name} was lost before the load committed ({reason}): "
                f"another writer took the job over after this process stalled for longer than "
                f"the lease period ({self.period_s} s). Nothing was committed; the next run "
                "removes this load's files"
            ) from None
        self._etag = written.get("etag")

    def _renewed_after_expiry(self, refusal: Any) -> bool:
        """Whether a commit refused because this holder's lease had expired (it stalled) may
        be tried again: the service renews an expired lease only if nobody leased the blob
        since, and the retried write is still conditional on the ETag this holder saw."""
        code = getattr(refusal, "error_code", None)
        if "LeaseNotPresent" not in str(getattr(code, "value", code) or ""):
            return False
        try:
            self._lease.renew()
        except Exception:
            return False
        log.warning("the lease on %s had expired; renewed it (nobody had taken it)", self.name)
        self._lost = None
        return True

    def release(self) -> None:
        if self._lease is None:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        lease, self._lease = self._lease, None
        try:
            lease.release()
        except Exception as exc:  # expired or taken: nothing to give back
            log.debug("the lease on %s was not released: %s", self.name, exc)


def lease_for(
    dest: Destination,
    name: str,
    holder: Holder,
    *,
    wait_s: float,
    same_task_wait_s: float,
    period_s: int,
) -> JobLease:
    """The lease called `name` in this lake: a blob lease on blob storage, a flock on disk."""
    if dest.protocol == "file":
        path = dest.path(LEASE_DIR, name + LOCK_FILE_SUFFIX)
        return FileLease(path, name, holder, wait_s, same_task_wait_s)
    container = dest.container_client()
    blob = container.get_blob_client(dest.blob_name(LEASE_DIR, name + LEASE_BLOB_SUFFIX))
    return BlobLease(blob, name, holder, wait_s, same_task_wait_s, period_s)


def log_path_beside(lock_path: str) -> str:
    """A local lake's commit log file of the lease whose lock file is `lock_path`."""
    return lock_path.removesuffix(LOCK_FILE_SUFFIX) + COMMIT_LOG_SUFFIX


def read_local_log(path: str) -> CommitLog | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return CommitLog.from_text(handle.read())
    except FileNotFoundError:
        return None


def read_commit_log(dest: Destination, dataset: str, table: str) -> CommitLog | None:
    """The commit log of `<dataset>/<table>` for a reader (no lease needed; None: no log)."""
    name = lease_name(dataset, table)
    if dest.protocol == "file":
        return read_local_log(log_path_beside(dest.path(LEASE_DIR, name + LOCK_FILE_SUFFIX)))
    blob_name = dest.blob_name(LEASE_DIR, name + LEASE_BLOB_SUFFIX)
    blob = dest.container_client().get_blob_client(blob_name)
    try:
        return CommitLog.from_text(blob.download_blob().readall())
    except _azure().errors.ResourceNotFoundError:
        return None
