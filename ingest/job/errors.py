"""What a job's failure is reported as: a `JobError` that says what to do, never a secret.

A native library that panics (a Rust `panic!` surfaces as `pyo3_runtime.PanicException`, a
`BaseException`) is reported like any other failure of that job, naming the library when it is
known and what to do; the rest of the run goes on (`ingest.errors.is_process_exit`).
Messages quote at most a short prefix of what the failing library said (`ingest.limits`).
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.config import JobConfig
from ingest.errors import JobError, RetriableJobError
from ingest.limits import MAX_REASON_CHARS, shorten
from ingest.sources.base import SourceBuilder
from ingest.sources.sql import classify_db_error


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every error behind it (dlt wraps step failures several levels deep)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return chain


def classify_error(
    exc: BaseException,
    job: JobConfig,
    where: str,
    *,
    builder: SourceBuilder | None = None,
    redact: Callable[[str], str] = str,
) -> JobError:
    """The JobError to report for `exc`: ours as is, the source type's own explanation
    (`SourceBuilder.explain`), database errors made actionable, network errors retriable,
    anything else named by its type and the first line of its message. `redact` runs over a
    library's message before it is cut (a secret is never half kept)."""
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, JobError):
            return error
    if builder is not None and (explained := builder.explain(exc, job, where)) is not None:
        return explained
    for error in chain:
        if (known := classify_source_message(error, where, redact)) is not None:
            return known
    for error in chain:
        if (db_error := classify_db_error(error, where)) is not None:
            return db_error
    root = chain[-1]
    if native := _native_panic(chain):
        return JobError(
            f"{_library_of(native)} crashed (a native panic, {type(native).__name__}) while "
            f"reading {where}, table {job.table_name}: {_first_line(native, redact)}; nothing "
            "was loaded for this table, the other tables of the run are not affected. The "
            "fast PostgreSQL reader (ConnectorX) panics on values it cannot represent (e.g. "
            "timestamps past year 262142): fix or cast the value in a view, or set "
            "INGEST_BACKEND=pyarrow to read through dlt's pyarrow backend"
        )
    if isinstance(root, ConnectionError | TimeoutError):
        return RetriableJobError(f"{where}: {type(root).__name__}: {_first_line(root, redact)}")
    return JobError(f"{type(root).__name__}: {_first_line(root, redact)}")


#: what databases and drivers (psycopg2, ConnectorX, PyMySQL, pyodbc, oracledb, sqlite3) say,
#: lower-cased, when a statement was cancelled by a timeout of ours (`SourceTimeouts`)
STATEMENT_TIMEOUT = (
    "canceling statement due to statement timeout",
    "maximum statement execution time exceeded",
    "max_statement_time exceeded",
    "query timeout expired",
    "dpy-4024",
    "ora-03156",
)
LOCK_TIMEOUT = (
    "canceling statement due to lock timeout",
    "lock wait timeout exceeded",
    "lock request time out period exceeded",
    "database is locked",
)
#: ... when the connection broke under a running job (a restart, a failover, a killed session)
CONNECTION_LOST = (
    "terminating connection",
    "server closed the connection unexpectedly",
    "connection reset",
    "broken pipe",
    "lost connection to mysql server",
    "mysql server has gone away",
    "connection closed",
    "could not receive data from server",
    "ssl syscall error",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "communication link failure",
    # ConnectorX's PostgreSQL client (rust-postgres) when the server ended the session
    "error { kind: closed",
)
#: ... when something is wrong that another attempt will not change
PERMANENT = (
    ("does not exist", "database"),
    ("unknown database", ""),
    ("role ", "does not exist"),
    ("no pg_hba.conf entry", ""),
    ("permission denied", ""),
)


def classify_source_message(
    exc: BaseException, where: str, redact: Callable[[str], str] = str
) -> JobError | None:
    """A timeout of ours, a lost connection (both retriable) or a permanent refusal, told by
    what the database said, on every read path (a driver's exception, or ConnectorX's
    RuntimeError / panic carrying the server's message). None: not one of those."""
    said = str(exc).lower()
    if not said or not _from_source(exc):
        return None
    reason = _first_line(exc, redact)
    if any(marker in said for marker in STATEMENT_TIMEOUT):
        return RetriableJobError(
            f"{where} cancelled a statement that ran longer than the statement timeout "
            f"(INGEST_STATEMENT_TIMEOUT_S, at most the job's timeout): {reason}; the next "
            "attempt tries again. Raise the timeout, or index the watermark column"
        )
    if any(marker in said for marker in LOCK_TIMEOUT):
        return RetriableJobError(
            f"{where}: the table is locked by another session and the job waited longer than "
            f"INGEST_LOCK_TIMEOUT_S for it: {reason}; nothing was loaded, the next attempt "
            "tries again (find the blocking session, e.g. pg_locks / SHOW PROCESSLIST)"
        )
    for first, second in PERMANENT:
        if first in said and second in said:
            return JobError(
                f"{where} refused the job: {reason}; check the connection settings (database, "
                "username) and the reader's grants. Retrying will not help"
            )
    if any(marker in said for marker in CONNECTION_LOST):
        return RetriableJobError(
            f"the connection to {where} broke while the job ran: {reason}; nothing of this "
            "attempt was committed, the next attempt tries again"
        )
    return None


#: modules whose exceptions come from a source database's driver
_DRIVERS = ("psycopg2", "pymysql", "pyodbc", "oracledb", "sqlite3", "sqlalchemy")


def _from_source(exc: BaseException) -> bool:
    """Whether `exc` was raised by a database driver or by ConnectorX (not by the lake's
    storage, whose errors have their own messages)."""
    if type(exc).__module__.split(".")[0] in _DRIVERS:
        return True
    return _library_of(exc).startswith("ConnectorX")


def _first_line(exc: BaseException, redact: Callable[[str], str] = str) -> str:
    """The first line of what `exc` says, at most MAX_REASON_CHARS: enough to act on, not a
    dump of the data or the response that made a library fail."""
    text = redact(str(exc)).strip()
    return shorten(text.splitlines()[0] if text else type(exc).__name__, MAX_REASON_CHARS)


def _native_panic(chain: list[BaseException]) -> BaseException | None:
    """The panic of a native (Rust/pyo3) library in `chain`, if any: a BaseException that is
    not an Exception (process exits never get here)."""
    for error in chain:
        if not isinstance(error, Exception):
            return error
    return None


def _library_of(exc: BaseException) -> str:
    """Which library panicked, from the traceback's innermost Python frame."""
    names = []
    tb = exc.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    for name in reversed(names):
        if name.startswith(("connectorx", "ingest.sources.fast_arrow")):
            return "ConnectorX (the fast PostgreSQL reader)"
        if name.startswith("deltalake"):
            return "delta-rs (the Delta writer)"
    return "a native library"
