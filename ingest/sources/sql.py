"""SQL sources through dlt's `sql_table` (its pyarrow backend, or the PostgreSQL fast path).

Each dialect only knows how to build its SQLAlchemy URL from the connection secrets; reading
and incremental cursors are shared, and what each column lands as is the type map's
(`ingest.sources.typemap`: exact, or the column is refused). Identifiers from the
configuration reach the database only through SQLAlchemy's quoting (dlt reflects the table
and builds the query).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table

from ingest.durations import parse_duration
from ingest.errors import JobError, RetriableJobError
from ingest.runtime.optional import fast_path_available
from ingest.secrets import reveal
from ingest.sources.base import (
    Capabilities,
    ExtractOptions,
    KeyRange,
    SourceBuilder,
    SourceTable,
)
from ingest.sources.cdc.identity import check_source
from ingest.sources.fast_arrow import SNAPSHOT, ExactConnectorXLoader
from ingest.sources.reserved import check_key_and_watermark, renames
from ingest.sources.snapshot import EMPTY_SNAPSHOT, TYPE_PLAN, SnapshotTableLoader
from ingest.sources.typemap import TablePlan, plan_table
from ingest.vocabulary import Backend

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ingest.config.model import JobConfig
    from ingest.secrets.resolver import Secret

log = logging.getLogger(__name__)


def _port(secrets: Mapping[str, Secret], default: int) -> int:
    raw = reveal(secrets, "port")
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise JobError(f"connection setting 'port' must be a number, got {raw!r}") from None


class SqlSourceBuilder(SourceBuilder):
    drivername: ClassVar[str]
    default_port: ClassVar[int] = 0
    required_keys: ClassVar[tuple[str, ...]] = ("host", "database", "username")
    optional_keys: ClassVar[tuple[str, ...]] = ("port", "password")

    # --- connection -----------------------------------------------------------------------

    def url(self, secrets: Mapping[str, Secret]) -> sa.URL:

        return sa.URL.create(
            self.drivername,
            username=reveal(secrets, "username"),
            password=reveal(secrets, "password"),
            host=reveal(secrets, "host"),
            port=_port(secrets, self.default_port),
            database=self.url_database(secrets),
            query=self.url_query(secrets),
        )

    def url_database(self, secrets: Mapping[str, Secret]) -> str | None:
        return reveal(secrets, "database")

    def url_query(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        return {}

    def engine_kwargs(self) -> dict[str, Any]:
        return {}

    def engine(self, secrets: Mapping[str, Secret]) -> sa.Engine:

        return self.configure_engine(sa.create_engine(self.url(secrets), **self.engine_kwargs()))

    def configure_engine(self, engine: sa.Engine) -> sa.Engine:
        """Every connection of `engine` gets the job's source timeouts (`SourceTimeouts`):
        `session_setup` runs on each new DBAPI connection. Also for engines made elsewhere
        from `url()` and `engine_kwargs()` (the reconciliation's snapshot)."""
        if self.timeouts.statement_s or self.timeouts.lock_s:
            sa.event.listen(engine, "connect", self._on_connect)
        return engine

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        self.session_setup(dbapi_connection)

    def session_setup(self, dbapi_connection: Any) -> None:
        """Apply the statement and lock timeouts to a new connection (dialects that take them
        as session settings); a no-op where the URL or the driver carries them."""

    def describe(self, secrets: dict[str, Secret]) -> str:
        host = reveal(secrets, "host", "?")
        port = reveal(secrets, "port", str(self.default_port))
        return f"{self.source_type} at {host}:{port}/{reveal(secrets, 'database', '')}"

    # --- reading ----------------------------------------------------------------------------

    #: whether this source has an exact fast path (ingest.sources.fast_arrow)
    fast_path: ClassVar[bool] = False

    @staticmethod
    def _missing_table(job: JobConfig) -> JobError:
        where = f"{job.schema_name}.{job.table_name}" if job.schema_name else job.table_name
        return JobError(
            f"table {where} not found in source {job.source_name!r}; check table_name "
            f"and schema_name in {job.origin or 'the config'}"
        )

    def _reflect(
        self, engine: sa.Engine, job: JobConfig
    ) -> tuple[sa.MetaData, list[dict[str, Any]]]:
        """Reflect the table once: the MetaData dlt's sql_table reuses (it would otherwise
        reflect the table again) and its columns (name, type, nullable); a missing table is a
        JobError naming it.

        Only what the engine uses is reflected, through SQLAlchemy's Inspector: the columns
        and the primary key. A full `Table(autoload_with=...)` also reads indexes, foreign,
        unique and check constraints and comments (11 catalog queries on PostgreSQL, compiled
        anew for each job's new engine): 68 ms per job here against 30 ms for these two."""

        try:
            with engine.connect() as connection:
                inspector = sa.inspect(connection)
                reflected = inspector.get_columns(job.table_name, schema=job.schema_name)
                primary_key = inspector.get_pk_constraint(job.table_name, schema=job.schema_name)
        except sa.exc.NoSuchTableError:
            raise self._missing_table(job) from None
        if not reflected:
            raise self._missing_table(job)
        # delete markers carry the key and the watermark only: every other column may be NULL
        # in the lake (ingest.checks.deletes)
        key = set(job.primary_key or primary_key.get("constrained_columns") or ())
        nullable_in_lake = job.delete_detection is not None or job.is_cdc
        reflected = [
            {**c, "nullable": c["nullable"] or (nullable_in_lake and c["name"] not in key)}
            for c in reflected
        ]
        metadata = sa.MetaData(schema=job.schema_name)
        # a column named like one the framework adds lands renamed (ingest.sources.reserved):
        # dlt must not know it by its own name; the type plan selects it
        renamed = renames(c["name"] for c in reflected)
        sa.Table(
            job.table_name,
            metadata,
            *(
                sa.Column(c["name"], c["type"], nullable=c["nullable"])
                for c in reflected
                if c["name"] not in renamed
            ),
            sa.PrimaryKeyConstraint(
                *(k for k in primary_key.get("constrained_columns") or () if k not in renamed)
            ),
        )
        columns = [
            {"name": c["name"], "type": c["type"], "nullable": c["nullable"]} for c in reflected
        ]
        return metadata, columns

    @staticmethod
    def _column_type(columns: list[dict[str, Any]], job: JobConfig, column: str) -> Any:
        for info in columns:
            if info["name"].lower() == column.lower():
                return info["type"]
        names = ", ".join(str(c["name"]) for c in columns)
        raise JobError(
            f"watermark column {column!r} not found in table {job.table_name}; "
            f"its columns are: {names}"
        )

    def estimated_rows(self, engine: sa.Engine, job: JobConfig) -> int | None:
        """The database's estimate of the table's rows, where it keeps one cheaply (None)."""
        return None

    def _backend(
        self,
        plan: TablePlan,
        job: JobConfig,
        options: ExtractOptions,
        engine: sa.Engine,
    ) -> dict[str, Any]:
        """sql_table arguments choosing the read path: exact fast path or dlt's pyarrow. Both
        read the plan's SELECT and land the plan's types (ingest.sources.typemap)."""

        # FULL loads are snapshots: an empty table still lands as one empty file
        common = {EMPTY_SNAPSHOT: not job.is_incremental, TYPE_PLAN: plan}
        pyarrow_backend = {
            "backend": "pyarrow",
            "table_loader_class": SnapshotTableLoader,
            "backend_kwargs": common,
        }
        if not self.fast_path or options.backend == Backend.PYARROW:
            return pyarrow_backend
        if not fast_path_available():  # the `fast` extra (connectorx) is not installed
            return pyarrow_backend

        blocker = plan.fast_path_blocker()
        if blocker:
            log.info("job %s uses dlt's pyarrow backend: %s", job.job_id, blocker)
            return pyarrow_backend
        return {
            "backend": "connectorx",
            "table_loader_class": ExactConnectorXLoader,
            "backend_kwargs": {
                # a snapshot's reads: one, which imports it (ConnectorX's partition bounds
                # would be read outside it)
                "partitions": 1 if options.snapshot else options.partitions,
                **({SNAPSHOT: options.snapshot} if options.snapshot else {}),
                # INGEST_READ_PARTITIONS=auto decides from it (ingest.sources.fast_arrow)
                "estimated_rows": (
                    self.estimated_rows(engine, job) if options.partitions is None else None
                ),
                **common,
            },
        }

    def plan(self, job: JobConfig, columns: list[dict[str, Any]]) -> TablePlan:
        """The table's type plan: what each column lands as; a JobError names every column
        no lake type holds (and a watermark that would land as text)."""
        plan = plan_table(self.source_type, job.job_id, job.table_name, columns)
        plan.check_watermark(job.watermark_column)
        check_key_and_watermark(job.job_id, plan.renamed, job.primary_key, job.watermark_column)
        return plan

    def build_resource(
        self, job: JobConfig, secrets: dict[str, Secret], options: ExtractOptions
    ) -> SourceTable:

        # data trust (ingest.checks.reconcile): read through the snapshot engine when one is given
        engine = options.engine or self.engine(secrets)
        metadata, columns = self._reflect(engine, job)
        plan = self.plan(job, columns)
        table = next(iter(metadata.tables.values()))
        keys = tuple(job.primary_key) or tuple(c.name for c in table.primary_key.columns)
        incremental = column_type = lag = None
        range_start: Literal["open", "closed"] = "closed"
        if job.is_incremental:
            assert job.watermark_column
            column_type = self._column_type(columns, job, job.watermark_column)
            start = options.initial_watermark
            if start is None:
                start = job.initial_watermark
            if options.open_unless_boundary_changed is not None:
                range_start = self._boundary_range(engine, table, job, options)
            incremental = dlt.sources.incremental(
                job.watermark_column,
                initial_value=coerce_watermark(start, column_type, job),
                end_value=coerce_watermark(options.end_watermark, column_type, job),
                # no de-duplication by dlt (its state would keep a hash per row at the last
                # watermark): the engine tells re-read boundary rows apart (ingest.checks.boundary)
                primary_key=(),
                # NULL watermarks cannot be ordered: INCREMENTAL jobs skip them (README).
                on_cursor_value_missing="exclude",
                range_start=range_start,
                range_end="open",
                lag=(lag := lookback_lag(job, column_type, bool(keys))),
            )
        resource = sql_table(
            credentials=engine,
            table=job.table_name,
            metadata=metadata,
            incremental=incremental,
            chunk_size=job.chunk_size or options.chunk_size,
            reflection_level="full_with_precision",
            # the lake's column types are the plan's, not dlt's reflection of the source's
            type_adapter_callback=_no_reflected_type,
            primary_key=list(job.primary_key) or None,  # type: ignore[arg-type]  # None: reflected
            write_disposition="append",
            query_adapter_callback=(
                _range_adapter(options.key_range, job) if options.key_range else None
            ),
            **self._backend(plan, job, options, engine),
        )
        resource.apply_hints(columns=plan.hints())  # type: ignore[arg-type]  # dlt column dicts
        return SourceTable(resource, column_type, keys, range_start == "closed", lag, plan.renamed)

    def _boundary_range(
        self, engine: sa.Engine, table: sa.Table, job: JobConfig, options: ExtractOptions
    ) -> Literal["open", "closed"]:
        """`open` (read `watermark > last`) when the source still holds exactly the rows at the
        last watermark that the lake holds (`options.open_unless_boundary_changed`), else
        `closed` (see ingest.checks.boundary). One count, on the watermark column's index."""
        watermark, loaded = job.watermark_column, options.open_unless_boundary_changed
        assert watermark is not None and loaded is not None
        column = next(c for c in table.columns if c.name.lower() == watermark.lower())
        query = sa.select(sa.func.count()).select_from(table).where(column == options.last_value)
        with engine.connect() as connection:
            rows = int(connection.execute(query).scalar_one())
        # more rows than landed: some arrived with that value (read them all again); as many or
        # fewer: rows left it (updated above it, or deleted), none is presumed new. A row that
        # arrives with an old value as another leaves it is a late row: `lookback` reads those
        unchanged = rows <= loaded
        log.info(
            "job %s: %d source row(s) at the last watermark, %d loaded: %s",
            job.job_id,
            rows,
            loaded,
            "reading above it" if unchanged else "re-reading them",
        )
        return "open" if unchanged else "closed"

    def key_bounds(
        self, engine: sa.Engine, job: JobConfig, column: str
    ) -> tuple[Any, Any, Any, Any]:
        """(column type, MIN, MAX of `column`, MAX of the watermark or None): what a split
        load cuts its ranges from (`ingest.job.split`). Identifiers quoted by SQLAlchemy."""
        _, columns = self._reflect(engine, job)
        column_type = _find_column(columns, job, column, "split column")
        key: sa.ColumnClause[Any] = sa.column(_source_name(columns, column))
        target = sa.table(job.table_name, key, schema=job.schema_name)
        selected = [sa.func.min(key), sa.func.max(key)]
        if job.is_incremental and job.watermark_column:
            mark: sa.ColumnClause[Any] = sa.column(_source_name(columns, job.watermark_column))
            target.append_column(mark)
            selected.append(sa.func.max(mark))
        with engine.connect() as connection:
            row = connection.execute(sa.select(*selected).select_from(target)).one()
        return column_type, row[0], row[1], row[2] if len(row) > 2 else None

    def range_counts(
        self, engine: sa.Engine, job: JobConfig, column: str, bounds: tuple[str, ...]
    ) -> list[int]:
        """The rows of each key range of a split load (`ingest.job.split`: the first from
        below, NULLs too, the last to above), in one scan: a SUM(CASE ...) per range."""
        metadata, _ = self._reflect(engine, job)
        table = next(iter(metadata.tables.values()))
        key = next(c for c in table.columns if c.name.lower() == column.lower())
        cuts = [coerce_watermark(b, key.type, job) for b in bounds]
        sums = []
        for index in range(len(cuts) + 1):
            conditions = []
            if index > 0:
                conditions.append(key >= cuts[index - 1])
            if index < len(cuts):
                conditions.append(key < cuts[index])
            inside = sa.and_(*conditions) if conditions else sa.true()
            if index == 0:
                inside = sa.or_(inside, key.is_(None))
            sums.append(sa.func.sum(sa.case((inside, 1), else_=0)))
        with engine.connect() as connection:
            row = connection.execute(sa.select(*sums).select_from(table)).one()
        return [int(value or 0) for value in row]

    def range_count(self, engine: sa.Engine, job: JobConfig, key_range: KeyRange) -> int:
        """The rows of one split load's chunk (`KeyRange`): the same condition its read uses.
        Read through an engine that imports an exported snapshot, it counts that state."""
        metadata, _ = self._reflect(engine, job)
        table = next(iter(metadata.tables.values()))
        query = _range_adapter(key_range, job)(sa.select(sa.func.count()).select_from(table), table)
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def key_quantiles(self, engine: sa.Engine, job: JobConfig, column: str) -> list[str]:
        """Values of `column` that cut the table into parts of about equal rows, ascending,
        as text, from the database's statistics (empty: none kept; ranges of equal width)."""
        return []

    def split_key(self, engine: sa.Engine, job: JobConfig) -> str | None:
        """The column a split load cuts on: `split_column`, else a one-column primary key
        (declared, else the table's own); None when there is none."""
        if job.split_column:
            return job.split_column
        if len(job.primary_key) == 1:
            return job.primary_key[0]
        if job.primary_key:
            return None
        with engine.connect() as connection:
            own = sa.inspect(connection).get_pk_constraint(job.table_name, schema=job.schema_name)
        columns = own.get("constrained_columns") or []
        return columns[0] if len(columns) == 1 else None

    def check_connection(self, job: JobConfig, secrets: dict[str, Secret]) -> None:

        engine = self.engine(secrets)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1" + self.dual()))
            _, columns = self._reflect(engine, job)
            if job.watermark_column:
                self._column_type(columns, job, job.watermark_column)
            self.plan(job, columns)
            if job.is_cdc:
                with engine.connect() as connection:
                    check_source(connection.connection.dbapi_connection, job)
                    connection.rollback()
        finally:
            engine.dispose()

    def dual(self) -> str:
        return ""


def _find_column(columns: list[dict[str, Any]], job: JobConfig, name: str, role: str) -> Any:
    for info in columns:
        if info["name"].lower() == name.lower():
            return info["type"]
    names = ", ".join(str(c["name"]) for c in columns)
    raise JobError(
        f"job {job.job_id}: {role} {name!r} not found in table {job.table_name}; its columns "
        f"are: {names}; fix it in {job.origin or 'the config'}"
    )


def _source_name(columns: list[dict[str, Any]], name: str) -> str:
    """The column's name as the source spells it (the config's may differ in case)."""
    return next(str(c["name"]) for c in columns if c["name"].lower() == name.lower())


def _range_adapter(key_range: KeyRange, job: JobConfig) -> Any:
    """dlt's query adapter restricting the read to one chunk's rows (`KeyRange`); values are
    bound parameters typed by the column, the column quoted by SQLAlchemy."""

    def adapt(query: Any, table: Any) -> Any:
        if key_range.nothing:
            return query.where(sa.false())
        column = next(c for c in table.columns if c.name.lower() == key_range.column.lower())
        conditions = []
        if key_range.lower is not None:
            conditions.append(column >= coerce_watermark(key_range.lower, column.type, job))
        if key_range.upper is not None:
            conditions.append(column < coerce_watermark(key_range.upper, column.type, job))
        where = sa.and_(*conditions) if conditions else sa.true()
        if key_range.with_nulls:
            where = sa.or_(where, column.is_(None))
        if key_range.watermark_below is not None and job.watermark_column:
            mark = next(c for c in table.columns if c.name.lower() == job.watermark_column.lower())
            where = sa.and_(
                where, mark < coerce_watermark(key_range.watermark_below, mark.type, job)
            )
        return query.where(where)

    return adapt


def lookback_lag(job: JobConfig, column_type: Any, keyed: bool) -> float | None:
    """dlt's `lag` for the job's `lookback`: seconds for a timestamp watermark, days for a date,
    the number itself for a numeric one. Rows re-read below the last watermark land again, so
    a job needs a key for it (its current view takes one version per key)."""
    if not job.lookback:
        return None
    seconds = parse_duration(job.lookback)
    plain_number = job.lookback.strip().replace(".", "", 1).isdigit()
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        python_type = None
    problem = ""
    if not keyed:
        problem = (
            "needs a primary key (declared in primary_key, or the table's own): rows re-read "
            "below the last watermark would land twice"
        )
    elif python_type is dt.datetime:
        return seconds
    elif python_type is dt.date:
        return (seconds or 0) / 86400
    elif python_type in (int, float, decimal.Decimal) and plain_number:
        return float(job.lookback)
    else:
        problem = (
            f"{job.lookback!r} does not fit watermark column {job.watermark_column} "
            f"({column_type}): a duration (2h, 1d) for a timestamp or date, a number for a "
            "numeric watermark"
        )
    raise JobError(f"job {job.job_id}: lookback {problem}; fix it in {job.origin or 'the config'}")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _no_reflected_type(sql_type: Any) -> None:
    """dlt's type reflection, switched off: the column hints come from the type plan."""
    return None


def coerce_watermark(value: Any, column_type: Any, job: JobConfig) -> Any:
    """Turn a configured watermark (text from the sheet) into the cursor column's type."""
    if value is None or value == "":
        return None
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return value
    # dates and numbers are parsed from the stripped text; a text watermark is compared
    # exactly as stored (a trailing space or carriage return is part of the value)
    raw = str(value)
    text = raw.strip()
    try:
        if python_type is dt.datetime:
            if isinstance(value, dt.datetime):
                parsed = value
            else:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if getattr(column_type, "timezone", False) and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            if not getattr(column_type, "timezone", False) and parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            return parsed
        if python_type is dt.date:
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(text[:10])
        if python_type is int:
            return int(decimal.Decimal(text))
        if python_type is decimal.Decimal:
            return decimal.Decimal(text)
        if python_type is float:
            return float(text)
        return raw
    except (ValueError, decimal.InvalidOperation):
        raise JobError(
            f"initial watermark {text!r} of job {job.job_id} does not fit column "
            f"{job.watermark_column} ({column_type}); use ISO dates like 2024-01-31 or "
            "2024-01-31T00:00:00+00:00, or a whole number"
        ) from None


def classify_db_error(exc: BaseException, where: str) -> JobError | None:
    """Turn a driver/SQLAlchemy error into a JobError with an actionable message.

    Returns None when `exc` is not a database error. The driver's first line is kept (it says
    what went wrong); connection URLs and parameters are not included.
    """
    if not isinstance(exc, sa.exc.DBAPIError | sa.exc.NoSuchTableError | sa.exc.ArgumentError):
        return None
    if isinstance(exc, sa.exc.NoSuchTableError):
        return JobError(f"table {exc} not found in {where}")
    original = getattr(exc, "orig", None) or exc
    first_line = (
        str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    )
    lowered = first_line.lower()
    if any(
        marker in lowered
        for marker in ("authentication failed", "access denied", "login failed", "ora-01017")
    ):
        return JobError(
            f"{where} refused the credentials: {first_line}; check the username/password "
            "secrets of this source"
        )
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return RetriableJobError(
            f"cannot reach {where}: {first_line}; check the host/port secrets and that the "
            "database is up and reachable from this machine"
        )
    return JobError(f"{where} failed: {first_line}")


class PostgresBuilder(SqlSourceBuilder):
    source_type = "postgresql"
    capabilities = Capabilities(
        aliases=("postgres",),
        row_count=True,
        no_count_reason="",
        snapshot_isolation=True,
        exports_snapshot=True,
        fast_path_extra="fast",
        config_extension=None,
        reads_tables=True,
        change_capture=True,
    )
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2
    drivername = "postgresql+psycopg2"
    default_port = 5432
    fast_path = True
    optional_keys = ("port", "password", "sslmode")

    def url_query(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        query = {"sslmode": sslmode} if (sslmode := reveal(secrets, "sslmode")) else {}
        # in the URL, so that psycopg2 and the fast path (ConnectorX) both apply them
        settings = []
        if self.timeouts.statement_s:
            settings.append(f"-c statement_timeout={_ms(self.timeouts.statement_s)}")
        if self.timeouts.lock_s:
            settings.append(f"-c lock_timeout={_ms(self.timeouts.lock_s)}")
        if settings:
            query["options"] = " ".join(settings)
        return query

    def engine_kwargs(self) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": 15, "application_name": "dlt-ingest"}}

    ROW_ESTIMATE = sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)")

    HISTOGRAM = sa.text(
        "SELECT histogram_bounds::text::text[] FROM pg_stats "
        "WHERE schemaname = COALESCE(:schema, current_schema()) AND tablename = :table "
        "AND attname = :column"
    )

    def key_quantiles(self, engine: sa.Engine, job: JobConfig, column: str) -> list[str]:
        """pg_stats.histogram_bounds of the column (kept by ANALYZE: ~100 values splitting its
        rows into parts of equal size); names are bound values, never part of the SQL."""
        try:
            with engine.connect() as connection:
                with connection.begin_nested():  # a failure must not end a snapshot
                    bounds = connection.execute(
                        self.HISTOGRAM,
                        {"schema": job.schema_name, "table": job.table_name, "column": column},
                    ).scalar()
        except sa.exc.SQLAlchemyError as exc:
            log.debug("no histogram for job %s: %s", job.job_id, type(exc).__name__)
            return []
        return [str(b) for b in bounds or ()]

    def estimated_rows(self, engine: sa.Engine, job: JobConfig) -> int | None:
        """pg_class.reltuples (kept by ANALYZE and autovacuum; -1 or 0 before either ran: None).
        The quoted table name is a bound parameter of to_regclass, never part of the SQL."""
        table = sa.table(job.table_name, schema=job.schema_name)
        name = engine.dialect.identifier_preparer.format_table(table)
        try:
            with engine.connect() as connection:
                # in a savepoint: a failure must not end the transaction of the job's snapshot
                with connection.begin_nested():
                    estimate = connection.execute(self.ROW_ESTIMATE, {"name": name}).scalar()
        except sa.exc.SQLAlchemyError as exc:
            log.debug("no row estimate for job %s: %s", job.job_id, type(exc).__name__)
            return None
        return int(estimate) if estimate is not None and estimate > 0 else None


class MySqlBuilder(SqlSourceBuilder):
    source_type = "mysql"
    capabilities = Capabilities(
        aliases=("mariadb",),
        row_count=True,
        no_count_reason="",
        snapshot_isolation=True,
        exports_snapshot=False,
        fast_path_extra=None,
        config_extension=None,
        reads_tables=True,
        change_capture=False,
    )
    drivername = "mysql+pymysql"
    default_port = 3306

    ROW_ESTIMATE = sa.text(
        "SELECT TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
    )

    def estimated_rows(self, engine: sa.Engine, job: JobConfig) -> int | None:
        """information_schema.TABLES.TABLE_ROWS (InnoDB's estimate); names are bound values."""
        try:
            with engine.connect() as connection:
                estimate = connection.execute(
                    self.ROW_ESTIMATE, {"schema": job.schema_name, "name": job.table_name}
                ).scalar()
        except sa.exc.SQLAlchemyError as exc:
            log.debug("no row estimate for job %s: %s", job.job_id, type(exc).__name__)
            return None
        return int(estimate) if estimate is not None and estimate > 0 else None

    def url_query(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        return {"charset": "utf8mb4"}

    def engine_kwargs(self) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": 15}}

    def session_setup(self, dbapi_connection: Any) -> None:
        """MariaDB limits a statement with `max_statement_time` (seconds), MySQL a SELECT with
        `max_execution_time` (ms); both wait for table locks up to `lock_wait_timeout` and for
        row locks up to `innodb_lock_wait_timeout` (whole seconds, at least 1)."""
        statements = []
        if self.timeouts.statement_s:
            if "mariadb" in str(dbapi_connection.get_server_info()).lower():
                statements.append(f"SET SESSION max_statement_time = {self.timeouts.statement_s:g}")
            else:
                statements.append(
                    f"SET SESSION max_execution_time = {_ms(self.timeouts.statement_s)}"
                )
        if self.timeouts.lock_s:
            seconds = max(1, round(self.timeouts.lock_s))
            statements.append(f"SET SESSION lock_wait_timeout = {seconds}")
            statements.append(f"SET SESSION innodb_lock_wait_timeout = {seconds}")
        with dbapi_connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


class MsSqlBuilder(SqlSourceBuilder):
    source_type = "mssql"
    capabilities = Capabilities(
        aliases=("azure_sql", "sqlserver", "sql_server"),
        row_count=True,
        no_count_reason="",
        snapshot_isolation=False,
        exports_snapshot=False,
        fast_path_extra=None,
        config_extension=None,
        reads_tables=True,
        change_capture=False,
    )
    drivername = "mssql+pyodbc"
    default_port = 1433
    optional_keys = ("port", "password", "driver", "encrypt", "trust_server_certificate")
    default_driver = "ODBC Driver 18 for SQL Server"

    def url_query(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        query = {"driver": reveal(secrets, "driver", self.default_driver) or ""}
        query["Encrypt"] = reveal(secrets, "encrypt", "yes") or "yes"
        if trust := reveal(secrets, "trust_server_certificate"):
            query["TrustServerCertificate"] = trust
        return query

    def session_setup(self, dbapi_connection: Any) -> None:
        """pyodbc's query timeout (whole seconds) and SQL Server's `SET LOCK_TIMEOUT` (ms)."""
        if self.timeouts.statement_s:
            dbapi_connection.timeout = max(1, round(self.timeouts.statement_s))
        if self.timeouts.lock_s:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET LOCK_TIMEOUT {_ms(self.timeouts.lock_s)}")
            finally:
                cursor.close()


class OracleBuilder(SqlSourceBuilder):
    source_type = "oracle"
    capabilities = Capabilities(
        aliases=(),
        row_count=True,
        no_count_reason="",
        snapshot_isolation=False,
        exports_snapshot=False,
        fast_path_extra=None,
        config_extension=None,
        reads_tables=True,
        change_capture=False,
    )
    drivername = "oracle+oracledb"  # thin mode: no Oracle client needed
    default_port = 1521
    required_keys = ("host", "username")
    optional_keys = ("port", "password", "service_name", "sid", "database")

    def url_database(self, secrets: Mapping[str, Secret]) -> str | None:
        """The SID, when no service name is given (`host:port/SID`)."""
        service_name = reveal(secrets, "service_name")
        sid = reveal(secrets, "sid") or reveal(secrets, "database")
        if not service_name and not sid:
            raise JobError("an oracle source needs a 'service_name' or 'sid' connection setting")
        return None if service_name else sid

    def url_query(self, secrets: Mapping[str, Secret]) -> dict[str, str]:
        service_name = reveal(secrets, "service_name")
        return {"service_name": service_name} if service_name else {}

    def dual(self) -> str:
        return " FROM DUAL"

    def session_setup(self, dbapi_connection: Any) -> None:
        """python-oracledb's `call_timeout` (ms) bounds every round trip (Oracle waits for
        locks inside one; a SELECT never waits for a row lock)."""
        limit = self.timeouts.statement_s or self.timeouts.lock_s
        if limit:
            dbapi_connection.call_timeout = _ms(limit)


class SqliteBuilder(SqlSourceBuilder):
    source_type = "sqlite"
    capabilities = Capabilities(
        aliases=(),
        row_count=True,
        no_count_reason="",
        snapshot_isolation=False,
        exports_snapshot=False,
        fast_path_extra=None,
        config_extension=None,
        reads_tables=True,
        change_capture=False,
    )
    drivername = "sqlite"
    required_keys = ("path",)
    optional_keys = ()

    def url(self, secrets: Mapping[str, Secret]) -> sa.URL:

        return sa.URL.create("sqlite", database=reveal(secrets, "path"))

    def describe(self, secrets: dict[str, Secret]) -> str:
        return f"sqlite file {reveal(secrets, 'path')}"

    def engine(self, secrets: Mapping[str, Secret]) -> sa.Engine:

        path = reveal(secrets, "path") or ""
        if not os.path.exists(path):  # sqlite would silently create an empty database
            raise JobError(f"sqlite file {path!r} does not exist; check the 'path' setting")
        return super().engine(secrets)

    def engine_kwargs(self) -> dict[str, Any]:
        """sqlite3's busy timeout: how long a read waits for a writer's lock on the file."""
        if self.timeouts.lock_s:
            return {"connect_args": {"timeout": self.timeouts.lock_s}}
        return {}
