"""The `api` sheet: per-resource details of `rest_api` jobs, validated at config load.

The `jobs` sheet names the source (`source_name`: its secrets give `base_url` and the
credentials) and the resource (`table_name`). The `api` sheet, keyed by `job_id`, says how to
read it: endpoint path, method, query params, data selector, paginator and its settings, auth
type, primary key and the query parameter fed by the incremental cursor. See docs/REST_API.md.

`REST_API_CONFIG` is this source type's configuration extension (named in
`RestApiBuilder.capabilities`): `ingest.config` calls its `apply` with the jobs-sheet
rows; every problem is appended to the same list as the jobs-sheet problems (with sheet, row
and column), so one ConfigError reports them all. The validated details travel in
`JobConfig.rest` (a JSON-safe dict), so a worker never re-reads the workbook.

CSV configurations have no second sheet: the `api` table is read from the sibling file
`<name>.api.csv` (for `jobs.csv`: `jobs.api.csv`), when it exists.

Pure Python: importing this module does not import dlt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonpath_ng import parse

from ingest.config.model import JobConfig
from ingest.config.sheets import LimitExceeded, RawRow, read_csv_table
from ingest.errors import Problem
from ingest.identifiers import is_sql_name
from ingest.limits import quote

API_SHEET = "api"
SOURCE_TYPE = "rest_api"

#: Jobs-sheet columns of the earlier local tool that describe a REST endpoint. They are
#: honoured for `rest_api` jobs (the `api` sheet row wins where both give a value).
JOBS_SHEET_COLUMNS = ("api_endpoint", "api_method", "pagination_type")
#: Column aliases (earlier tool, dlt's own names) -> the column name used here.
ALIASES = {
    "api_endpoint": "endpoint",
    "path": "endpoint",
    "endpoint_path": "endpoint",
    "api_method": "method",
    "pagination_type": "paginator",
    "pagination": "paginator",
    "query_params": "params",
    "auth_type": "auth",
    "cursor_param_name": "cursor_param",
}

METHODS = ("GET", "POST")
AUTH_TYPES = ("none", "bearer", "api_key", "basic")
AUTH_ALIASES = {"": "none", "token": "bearer", "apikey": "api_key", "http_basic": "basic"}
API_KEY_LOCATIONS = ("header", "query")
PAGINATORS = ("json_link", "header_link", "offset", "page_number", "cursor", "single_page", "auto")
PAGINATOR_ALIASES = {
    "none": "single_page",
    "single": "single_page",
    "next_url": "json_link",
    "link": "json_link",
    "json_response": "json_link",
    "link_header": "header_link",
    "page": "page_number",
    "offset_limit": "offset",
    "limit_offset": "offset",
    "json_cursor": "cursor",
}

#: paginator setting column -> (paginators it applies to, kind)
PAGINATOR_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "next_url_path": (("json_link",), "jsonpath"),
    "limit": (("offset",), "int"),
    "offset_param": (("offset",), "name"),
    "limit_param": (("offset",), "name"),
    "total_path": (("offset", "page_number"), "jsonpath"),
    "has_more_path": (("offset", "page_number", "cursor"), "jsonpath"),
    "page_param": (("page_number",), "name"),
    "base_page": (("page_number",), "int0"),
    "cursor_path": (("cursor",), "jsonpath"),
    "cursor_param": (("cursor",), "name"),
}

COLUMNS = (
    "job_id",
    "endpoint",
    "method",
    "params",
    "json_body",
    "data_selector",
    "paginator",
    *PAGINATOR_SETTINGS,
    "auth",
    "api_key_name",
    "api_key_location",
    "primary_key",
    "incremental_param",
    "notes",
)


# --------------------------------------------------------------------------------------------
# reading


def find_api_table(
    config_path: Path, sheets: Mapping[str, tuple[list[str], list[RawRow]]]
) -> tuple[str, list[str], list[RawRow]] | None:
    """The `api` table: a sheet named `api` (any case, e.g. `API`), or for a CSV
    configuration the sibling file `<name>.api.csv`."""
    for name, (headers, rows) in sheets.items():
        if name.strip().lower() == API_SHEET:
            return name, headers, rows
    path = Path(config_path)
    if path.suffix.lower() == ".csv":
        sibling = path.with_name(f"{path.stem}.api.csv")
        if sibling.exists():
            headers, rows = read_csv_table(sibling, sibling.name)
            return sibling.name, headers, rows
    return None


# --------------------------------------------------------------------------------------------
# validation


def _jsonpath_ok(text: str) -> bool:
    try:
        parse(text)
    except Exception:  # jsonpath-ng raises its own lexer/parser errors
        return False
    return True


class _ApiRow:
    """One `api` row (merged with the legacy jobs-sheet columns) -> the `rest` dict."""

    def __init__(
        self,
        sheet: str,
        row: int | None,
        values: Mapping[str, Any],
        problems: list[Problem],
        shown: Mapping[str, str],
    ):
        self.sheet = sheet
        self.row = row
        self.values = values
        self.problems = problems
        self.shown = shown

    def problem(self, column: str | None, message: str) -> None:
        column = self.shown.get(column, column) if column else column
        self.problems.append(Problem(message, self.sheet, self.row, column))

    def text(self, column: str) -> str | None:
        value = self.values.get(column)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    def _json_object(self, column: str) -> dict[str, Any] | None:
        raw = self.text(column)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.problem(column, f"is not valid JSON ({exc.msg} at character {exc.pos})")
            return None
        except RecursionError:
            self.problem(column, "is nested too deeply (JSON objects inside objects)")
            return None
        except ValueError:  # e.g. an integer of more than 4,300 digits
            self.problem(column, "holds a number too long to read")
            return None
        if not isinstance(value, dict):
            self.problem(column, 'must be a JSON object, e.g. {"status": "open"}')
            return None
        return value

    def _name(self, column: str) -> str | None:
        value = self.text(column)
        if value is not None and (any(c.isspace() for c in value) or set(value) & set("{}&=?#")):
            self.problem(column, f"{quote(value)} is not a plain parameter name")
            return None
        return value

    def check(self, job: JobConfig) -> dict[str, Any] | None:
        before = len(self.problems)
        rest: dict[str, Any] = {}

        endpoint = self.text("endpoint")
        if endpoint is None:
            self.problem("endpoint", "a value is required (the path below the source's base_url)")
        elif "://" in endpoint or endpoint.startswith("//"):
            self.problem(
                "endpoint",
                f"{quote(endpoint)} must be a path relative to the source's base_url (e.g. "
                "v1/items); the host comes from the base_url secret",
            )
        elif any(c.isspace() for c in endpoint) or "?" in endpoint or "#" in endpoint:
            self.problem(
                "endpoint",
                f"{quote(endpoint)} must be a plain path: no spaces, no query string (use params)",
            )
        elif "{" in endpoint or "}" in endpoint:
            self.problem("endpoint", f"{quote(endpoint)}: placeholders in braces are not supported")
        rest["path"] = endpoint

        method = (self.text("method") or "GET").upper()
        if method not in METHODS:
            self.problem("method", f"{quote(method)} is not one of: {', '.join(METHODS)}")
        rest["method"] = method

        params = self._json_object("params") or {}
        for key, value in params.items():
            if isinstance(value, dict | list) or value is None:
                self.problem(
                    "params", f"parameter {quote(key)} must be a text, number or true/false"
                )
            elif isinstance(value, str) and ("{" in value or "}" in value):
                self.problem(
                    "params",
                    f"parameter {quote(key)}: placeholders in braces are not supported; the "
                    "incremental cursor is sent through incremental_param",
                )
        rest["params"] = params

        body = self._json_object("json_body")
        if body is not None and method != "POST":
            self.problem("json_body", "a request body needs method POST")
        rest["json"] = body

        selector = self.text("data_selector")
        if selector is not None and not _jsonpath_ok(selector):
            self.problem(
                "data_selector", f"{quote(selector)} is not a valid JSONPath (e.g. data.items)"
            )
        rest["data_selector"] = selector

        rest["paginator"] = self._paginator()
        rest["auth"] = self._auth()

        keys: list[str] = []
        for part in (self.text("primary_key") or "").split(","):
            part = part.strip()
            if not part:
                continue
            if not is_sql_name(part):
                self.problem("primary_key", f"{quote(part)} is not a plain field name")
            else:
                keys.append(part)
        if keys and job.primary_key and tuple(keys) != tuple(job.primary_key):
            self.problem(
                "primary_key",
                f"{', '.join(keys)} differs from the jobs sheet's primary_key "
                f"{', '.join(job.primary_key)} ({job.origin}); set it in one place",
            )
        rest["primary_key"] = keys or list(job.primary_key)

        incremental_param = self._name("incremental_param")
        if incremental_param is not None:
            if not job.is_incremental:
                self.problem(
                    "incremental_param",
                    f"job {job.job_id} is {job.load_type}: incremental_param needs load_type "
                    "INCREMENTAL and a watermark_column",
                )
            elif incremental_param in params:
                self.problem(
                    "incremental_param",
                    f"{quote(incremental_param)} is also set in params; the cursor sets it",
                )
        rest["incremental_param"] = incremental_param
        rest["origin"] = f"sheet {self.sheet!r} row {self.row}" if self.row else job.origin

        return rest if len(self.problems) == before else None

    def _paginator(self) -> dict[str, Any]:
        raw = self.text("paginator")
        kind: str | None
        if raw is None:
            self.problem(
                "paginator",
                f"a value is required: one of {', '.join(PAGINATORS)} (single_page when the "
                "endpoint returns everything at once)",
            )
            kind = None
        else:
            kind = raw.strip().lower().replace("-", "_").replace(" ", "_")
            kind = PAGINATOR_ALIASES.get(kind, kind)
            if kind not in PAGINATORS:
                self.problem("paginator", f"{quote(raw)} is not one of: {', '.join(PAGINATORS)}")
                kind = None
        settings: dict[str, Any] = {}
        for column, (applies_to, value_kind) in PAGINATOR_SETTINGS.items():
            value = self.text(column)
            if value is None:
                continue
            if kind is not None and kind not in applies_to:
                self.problem(
                    column,
                    f"does not apply to paginator {quote(kind)} (it is a setting of "
                    f"{' / '.join(applies_to)})",
                )
                continue
            if value_kind in ("int", "int0"):
                try:
                    number = int(value)
                    if number < (0 if value_kind == "int0" else 1):
                        raise ValueError
                except ValueError:
                    self.problem(
                        column,
                        f"{quote(value)} must be a whole number >= "
                        f"{0 if value_kind == 'int0' else 1}",
                    )
                    continue
                settings[column] = number
            elif value_kind == "jsonpath":
                if not _jsonpath_ok(value):
                    self.problem(column, f"{quote(value)} is not a valid JSONPath")
                    continue
                settings[column] = value
            else:
                if self._name(column) is not None:
                    settings[column] = value
        if kind == "offset" and "limit" not in settings and self.text("limit") is None:
            self.problem("limit", "paginator offset needs limit (the page size)")
        if kind == "cursor" and "cursor_path" not in settings and self.text("cursor_path") is None:
            self.problem(
                "cursor_path", "paginator cursor needs cursor_path (where the next cursor is)"
            )
        if kind is None:
            return {}
        return {"type": kind, **settings}

    def _auth(self) -> dict[str, Any]:
        raw = (self.text("auth") or "").lower()
        kind = AUTH_ALIASES.get(raw, raw)
        if kind not in AUTH_TYPES:
            self.problem("auth", f"{quote(raw)} is not one of: {', '.join(AUTH_TYPES)}")
            return {"type": "none"}
        name = self._name("api_key_name")
        location = (self.text("api_key_location") or "header").lower()
        if kind == "api_key":
            if name is None and self.text("api_key_name") is None:
                self.problem("api_key_name", "auth api_key needs the header or query name")
            if location not in API_KEY_LOCATIONS:
                self.problem(
                    "api_key_location",
                    f"{quote(location)} is not one of: {', '.join(API_KEY_LOCATIONS)}",
                )
            return {"type": kind, "name": name, "location": location}
        for column in ("api_key_name", "api_key_location"):
            if self.text(column) is not None:
                self.problem(column, f"applies only to auth api_key (auth is {quote(kind)})")
        return {"type": kind}


def _normalize(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Values under this module's column names, and the column name the file used."""
    out: dict[str, Any] = {}
    shown: dict[str, str] = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if out.get(name) is None:
            out[name] = value
            shown[name] = key
    return out, shown


def apply_api_sheet(
    config_path: str,
    sheets: Mapping[str, tuple[list[str], list[RawRow]]],
    job_rows: list[RawRow],
    checked: list[JobConfig],
    problems: list[Problem],
    warnings: list[str],
) -> list[JobConfig]:
    """Attach each `rest_api` job's validated endpoint details (`JobConfig.rest`).

    Problems go into `problems` (reported with the jobs-sheet ones): an api row for an unknown
    or non-REST job, a duplicate api row, a REST job without endpoint details, bad values.
    """
    try:
        table = find_api_table(Path(config_path), sheets)
    except LimitExceeded as exc:
        problems.extend(exc.problems)
        table = None
    api_rows: dict[str, RawRow] = {}
    sheet_name = API_SHEET
    if table is not None:
        sheet_name, headers, rows = table
        seen: set[str] = set()
        for column in headers:
            name = ALIASES.get(column, column)
            if name in seen:
                problems.append(Problem("column appears twice", sheet_name, 1, column))
            seen.add(name)
            if name not in COLUMNS:
                warnings.append(
                    f"sheet {quote(sheet_name)} column {quote(column)} is not a known column; "
                    "ignored"
                )
        if "job_id" not in seen:
            problems.append(Problem("required column is missing", sheet_name, 1, "job_id"))
            rows = []
        all_ids = {str(r.values.get("job_id") or "").strip() for r in job_rows}
        job_types = {job.job_id: job.source_type for job in checked}
        for raw in rows:
            job_id = str(raw.values.get("job_id") or "").strip()
            if not job_id:
                problems.append(Problem("a value is required", raw.sheet, raw.row, "job_id"))
            elif job_id in api_rows:
                problems.append(
                    Problem(
                        f"duplicate api row for job {quote(job_id)} (first in row "
                        f"{api_rows[job_id].row})",
                        raw.sheet,
                        raw.row,
                        "job_id",
                    )
                )
            elif job_id not in all_ids:
                problems.append(
                    Problem(
                        f"job {quote(job_id)} is not on the jobs sheet",
                        raw.sheet,
                        raw.row,
                        "job_id",
                    )
                )
            elif job_id in job_types and job_types[job_id] != SOURCE_TYPE:
                problems.append(
                    Problem(
                        f"job {quote(job_id)} has source_type {job_types[job_id]!r}; api rows are "
                        "for rest_api jobs only",
                        raw.sheet,
                        raw.row,
                        "job_id",
                    )
                )
            else:
                api_rows[job_id] = raw

    raw_of: dict[str, RawRow] = {}
    for raw in job_rows:
        raw_of.setdefault(str(raw.values.get("job_id") or "").strip(), raw)
    out: list[JobConfig] = []
    for job in checked:
        job_raw = raw_of[job.job_id]
        legacy = {c: job_raw.values.get(c) for c in JOBS_SHEET_COLUMNS if job_raw.values.get(c)}
        if job.source_type != SOURCE_TYPE:
            if legacy:
                warnings.append(
                    f"sheet {job_raw.sheet!r} row {job_raw.row}: "
                    f"{', '.join(legacy)} ignored for a {job.source_type} job"
                )
            out.append(job)
            continue
        api_raw = api_rows.get(job.job_id)
        if api_raw is None and not legacy:
            problems.append(
                Problem(
                    f"rest_api job {job.job_id!r} has no row on the {quote(sheet_name)} sheet "
                    f"(keyed by job_id) saying which endpoint to read; see docs/REST_API.md",
                    job_raw.sheet,
                    job_raw.row,
                    "job_id",
                )
            )
            continue
        if api_raw is not None:
            if legacy:
                warnings.append(
                    f"sheet {job_raw.sheet!r} row {job_raw.row}: {', '.join(legacy)} ignored; "
                    f"the {quote(sheet_name)} sheet row {api_raw.row} describes job {job.job_id}"
                )
            values, shown = _normalize(api_raw.values)
            checker = _ApiRow(api_raw.sheet, api_raw.row, values, problems, shown)
        else:  # only the earlier tool's jobs-sheet columns: problems point at the jobs row
            values, shown = _normalize(legacy)
            checker = _ApiRow(job_raw.sheet, job_raw.row, values, problems, shown)
        rest = checker.check(job)
        if rest is not None and job.is_incremental and not rest["incremental_param"]:
            warnings.append(
                f"job {job.job_id} ({rest['origin']}): INCREMENTAL without incremental_param "
                "reads the whole endpoint every run and keeps only records past the watermark; "
                "set incremental_param to the API's filter parameter (e.g. since)"
            )
        if rest is not None:
            out.append(dataclasses.replace(job, rest=rest))
    return out


class RestApiConfig:
    """The configuration a `rest_api` job adds (see `ingest.sources.ConfigExtension`)."""

    #: jobs-sheet columns of the earlier local tool, honoured for rest_api jobs
    columns = JOBS_SHEET_COLUMNS
    apply = staticmethod(apply_api_sheet)


REST_API_CONFIG = RestApiConfig()
