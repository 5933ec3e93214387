"""REST API sources through dlt's declarative `rest_api` source.

The job's `api` sheet row (validated at config load into `JobConfig.rest`, see
`ingest.sources.rest_config`) and the source's secrets become one `RESTAPIConfig`; dlt does
the requests, pagination, incremental cursor and retries. This module adds three guards
around dlt's retrying `requests` session:

- only `https://` base URLs, except for localhost (`http://` there is for tests/dev);
- every request stays on the base URL's scheme and host, so a next-page link or redirect
  elsewhere never receives the credentials;
- HTTP failures become `JobError`s naming the method and URL path, never the query string,
  headers or body: 401/403/404 and other 4xx fail at once; 429/5xx are retried by dlt
  (backoff, `Retry-After` honoured, `RUNTIME__REQUEST_MAX_ATTEMPTS` attempts) and then
  become `RetriableJobError`.

The rule for REST errors: an error carries the source, the HTTP status, the method, the URL
path without its query string and a short reason; never a response body, a header or a record
(an API may echo the request URL, and with it an api_key sent as a query parameter, in its
body). dlt's own errors quote bodies (a paginator that cannot find `total` prints the whole
response): `RestApiBuilder.explain` replaces any failure of the extraction with one built from
the last exchange (`Exchange`) and the first clause of the library's message.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.extract.exceptions import ResourceExtractionError
from dlt.sources.helpers.requests.retry import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, BearerTokenAuth, HttpBasicAuth
from dlt.sources.rest_api import rest_api_resources
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import HTTPError, Timeout

from ingest.errors import JobError, RetriableJobError
from ingest.limits import shorten
from ingest.secrets import reveal
from ingest.secrets.resolver import env_var_name
from ingest.sources.base import (
    Capabilities,
    ExtractOptions,
    SourceBuilder,
    SourceTable,
    SourceTimeouts,
)

if TYPE_CHECKING:
    from ingest.config.model import JobConfig
    from ingest.secrets.resolver import Secret

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
STATUS_ADVICE = {
    401: "the API refused the credentials: check the token / api_key / username and "
    "password secrets of this source",
    403: "the credentials are valid but not allowed to read this endpoint: ask the API owner "
    "for access",
    404: "the endpoint does not exist: check `endpoint` on the api sheet and the base_url secret",
}


_URL_QUERY = re.compile(r"(https?://[^\s?\"'<>]+)\?[^\s\"'<>]*")
_REQUEST_LINE_QUERY = re.compile(r"(\"[A-Z]+ /[^\s?\"]*)\?[^\s\"]*")


class QueryStringScrubber(logging.Filter):
    """Removes query strings from HTTP client log records (urllib3 logs request lines with
    their query at DEBUG; an API key sent as a query parameter would be in it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        scrubbed = _REQUEST_LINE_QUERY.sub(r"\1?***", _URL_QUERY.sub(r"\1?***", message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def install_log_scrubber() -> None:
    """Idempotent: attach the scrubber to the loggers of the HTTP stack."""
    for name in ("urllib3.connectionpool", "dlt"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringScrubber) for f in logger.filters):
            logger.addFilter(QueryStringScrubber())


def check_base_url(source_name: str, base_url: str) -> str:
    """The base URL if it may be used; JobError naming the source otherwise."""
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").lower()
    where = f"source {source_name!r}: base_url"
    if parts.scheme not in ("https", "http") or not host:
        raise JobError(f"{where} must be an https:// URL, e.g. https://api.example.com/v1")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise JobError(
            f"{where} uses http:// for host {host}: only https:// is allowed "
            "(http:// only for localhost, 127.0.0.1 and ::1)"
        )
    if parts.username or parts.password:
        raise JobError(f"{where} must not contain credentials; use the username/password secrets")
    if parts.query or parts.fragment:
        raise JobError(
            f"{where} must not contain a query string; put query parameters in `params` on "
            "the api sheet and keys in the api_key secret"
        )
    return base_url.strip()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.netloc.rsplit("@", 1)[-1]).lower()


def http_error(source_name: str, method: str, url: str, status: int, reason: str) -> JobError:
    """A JobError for a failed HTTP response: names method and path, no query string."""
    path = urlsplit(url).path or "/"
    text = f"source {source_name!r}: HTTP {status} {reason or ''} for {method} {path}".replace(
        "  ", " "
    )
    if status in STATUS_ADVICE:
        return JobError(f"{text}: {STATUS_ADVICE[status]}")
    if status == 429 or status >= 500:
        return RetriableJobError(
            f"{text}: still failing after the configured retries "
            "(RUNTIME__REQUEST_MAX_ATTEMPTS); the API is throttling or down, try again later"
        )
    return JobError(f"{text}: check `params` and `endpoint` on the api sheet")


@dataclass
class Exchange:
    """The last request of a job's session, for error messages: never its query or body."""

    method: str = ""
    path: str = ""
    status: int | None = None

    def describe(self) -> str:
        if not self.method:
            return "before any request"
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.method} {self.path}{status}"


#: where a library's message starts quoting data (a response, a record, a value)
_QUOTED_DATA = re.compile(r"\s(?:got|content|item|Response:)\b|[\[{]|\n", re.IGNORECASE)
#: at most this much of a library's message is kept as the reason
MAX_REST_REASON_CHARS = 160


def short_reason(exc: BaseException) -> str:
    """What went wrong, without what the library quoted: the message up to where it starts
    quoting data, with URLs cut before their query string."""
    if isinstance(exc, json.JSONDecodeError) or type(exc).__name__ == "JSONDecodeError":
        return "the response is not JSON"
    text = str(exc).strip()
    cut = _QUOTED_DATA.search(text)
    text = text[: cut.start()] if cut else text
    text = _URL_QUERY.sub(r"\1", text).rstrip(" .,:;`'\"")
    return shorten(text or type(exc).__name__, MAX_REST_REASON_CHARS)


def make_session(source_name: str, base_url: str, exchange: Exchange | None = None) -> Any:
    """dlt's retrying requests session (429/5xx/connection errors retried with exponential
    backoff, Retry-After honoured; settings from dlt's `RUNTIME__REQUEST_*` configuration),
    wrapped so requests stay on the base URL's host and failures become JobErrors.
    `exchange`: updated with every request's method, path and status."""

    install_log_scrubber()
    runtime = resolve_configuration(RuntimeConfiguration())
    session = Client(
        request_timeout=runtime.request_timeout,
        raise_for_status=False,  # RESTClient's own hook raises (and is retried)
        request_max_attempts=runtime.request_max_attempts,
        request_backoff_factor=runtime.request_backoff_factor,
        request_max_retry_delay=runtime.request_max_retry_delay,
        respect_retry_after_header=True,
    ).session
    allowed = _origin(base_url)
    retrying_send = session.send

    def send(request: Any, **kwargs: Any) -> Any:
        method = str(getattr(request, "method", "GET") or "GET").upper()
        if exchange is not None:
            exchange.method, exchange.path = method, urlsplit(request.url).path or "/"
            exchange.status = None
        if _origin(request.url) != allowed:
            parts = urlsplit(request.url)
            raise JobError(
                f"source {source_name!r}: refusing {method} to {parts.scheme}://"
                f"{parts.hostname}{parts.path}: it is not on the base_url's host, so the "
                "credentials are not sent there (check the paginator settings)"
            )
        try:
            response = retrying_send(request, **kwargs)
            if exchange is not None:
                exchange.status = response.status_code
            return response
        except HTTPError as exc:
            response = exc.response
            if response is None:
                raise RetriableJobError(
                    f"source {source_name!r}: {method} {urlsplit(request.url).path} failed: "
                    f"{type(exc).__name__}"
                ) from None
            raise http_error(
                source_name, method, request.url, response.status_code, response.reason
            ) from None
        except (RequestsConnectionError, Timeout) as exc:
            raise RetriableJobError(
                f"source {source_name!r}: cannot reach {allowed[1]} for {method} "
                f"{urlsplit(request.url).path} ({type(exc).__name__}) after the configured "
                "retries; check the base_url secret and that the API is up"
            ) from None

    session.send = send  # type: ignore[method-assign]  # retries around the transport
    return session


def make_auth(job: JobConfig, secrets: dict[str, Secret]) -> Any:
    """dlt auth object for the api sheet's `auth` type, from the source's secrets."""

    spec = (job.rest or {}).get("auth") or {"type": "none"}
    kind = spec.get("type", "none")
    name = job.source_name

    def need(key: str) -> str:
        value = reveal(secrets, key)
        if value is None:
            raise JobError(
                f"source {name!r} uses auth {kind} but has no {key!r} secret: set "
                f"{env_var_name(name, key)} or [sources.{name}] {key} in the secrets file "
                "(or the Key Vault secret)"
            )
        return value

    auth: Any
    if kind == "none":
        return None
    if kind == "bearer":
        auth = BearerTokenAuth(token=need("token"))
    elif kind == "api_key":
        auth = APIKeyAuth(
            name=spec["name"], api_key=need("api_key"), location=spec.get("location", "header")
        )
    elif kind == "basic":
        auth = HttpBasicAuth(username=need("username"), password=need("password"))
    else:  # validated at config load; kept for hand-made JobConfigs
        raise JobError(f"job {job.job_id}: unknown auth type {kind!r}")
    # Values are given here; mark resolved so dlt does not look for them in its own config.
    return auth.resolve()


def coerce_start(value: Any) -> Any:
    """A configured watermark (text from the sheet or CLI) as the cursor's JSON type:
    whole numbers become int, anything else stays text (ISO dates compare as text)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return text


class RestApiBuilder(SourceBuilder):
    source_type = "rest_api"
    capabilities = Capabilities(
        aliases=("api", "rest"),
        row_count=False,
        no_count_reason="REST source has no row count",
        snapshot_isolation=False,
        exports_snapshot=False,
        fast_path_extra=None,
        config_extension="ingest.sources.rest_config:REST_API_CONFIG",
        reads_tables=False,
        change_capture=False,
    )
    required_keys = ("base_url",)
    optional_keys: ClassVar[tuple[str, ...]] = ("token", "api_key", "username", "password")

    def __init__(self, timeouts: SourceTimeouts | None = None) -> None:
        super().__init__(timeouts)
        #: the job's last HTTP exchange (one builder per job)
        self.exchange = Exchange()

    def explain(self, exc: BaseException, job: JobConfig, where: str) -> JobError | None:
        """A failure while extracting (dlt wraps it in ResourceExtractionError): named by the
        last exchange and a short reason, never with the body dlt's message may quote."""
        chain = [exc]
        while (nxt := chain[-1].__cause__ or chain[-1].__context__) and nxt not in chain:
            chain.append(nxt)
        if not any(isinstance(error, ResourceExtractionError) for error in chain):
            return None
        root = chain[-1]
        origin = (job.rest or {}).get("origin") or job.origin
        return JobError(
            f"source {job.source_name!r}: {self.exchange.describe()} could not be read: "
            f"{type(root).__name__}: {short_reason(root)}; check the paginator and "
            f"data_selector of job {job.job_id} on the api sheet ({origin}) against the "
            "API's responses (the response itself is not shown: it may hold credentials or "
            "records)"
        )

    def describe(self, secrets: dict[str, Secret]) -> str:
        base = reveal(secrets, "base_url") or "?"
        parts = urlsplit(base)
        return f"rest_api at {parts.scheme}://{parts.hostname}{parts.path}"

    def _spec(self, job: JobConfig) -> dict[str, Any]:
        if not job.rest:
            raise JobError(
                f"rest_api job {job.job_id} has no endpoint details: add its row to the `api` "
                "sheet (see docs/REST_API.md)"
            )
        return job.rest

    def rest_config(
        self, job: JobConfig, secrets: dict[str, Secret], options: ExtractOptions
    ) -> dict[str, Any]:
        """The dlt RESTAPIConfig of this job (holds live credentials: never log it)."""
        spec = self._spec(job)
        base_url = check_base_url(job.source_name, need_base_url(job, secrets))
        endpoint: dict[str, Any] = {
            "path": spec["path"],
            "method": spec.get("method") or "GET",
            "params": dict(spec.get("params") or {}),
            "paginator": dict(spec.get("paginator") or {"type": "auto"}),
        }
        if spec.get("json") is not None:
            endpoint["json"] = spec["json"]
        if spec.get("data_selector"):
            endpoint["data_selector"] = spec["data_selector"]
        if endpoint["paginator"].get("type") == "offset":
            # no total_path configured: stop at the first empty page (dlt's default is "total")
            endpoint["paginator"].setdefault("total_path", None)
        if endpoint["paginator"].get("type") == "page_number":
            endpoint["paginator"].setdefault("base_page", 1)
            endpoint["paginator"].setdefault("total_path", None)
        if job.is_incremental:
            assert job.watermark_column
            start = options.initial_watermark
            if start is None:
                start = job.initial_watermark
            incremental: dict[str, Any] = {
                "cursor_path": job.watermark_column,
                "initial_value": coerce_start(start),
                # records without the cursor field cannot be ordered: skipped (docs)
                "on_cursor_value_missing": "exclude",
                "range_start": "closed",
                "range_end": "open",
            }
            if options.end_watermark is not None:
                incremental["end_value"] = coerce_start(options.end_watermark)
            if spec.get("incremental_param"):
                incremental["start_param"] = spec["incremental_param"]
            endpoint["incremental"] = incremental
        resource: dict[str, Any] = {
            "name": job.table_name,
            "endpoint": endpoint,
            "write_disposition": "append",
            # one lake table per job: nested objects/lists stay JSON columns, no child tables
            "max_table_nesting": 0,
        }
        if spec.get("primary_key"):
            resource["primary_key"] = list(spec["primary_key"])
        client: dict[str, Any] = {
            "base_url": base_url,
            "session": make_session(job.source_name, base_url, self.exchange),
        }
        auth = make_auth(job, secrets)
        if auth is not None:
            client["auth"] = auth
        return {"client": client, "resources": [resource]}

    def build_resource(
        self, job: JobConfig, secrets: dict[str, Secret], options: ExtractOptions
    ) -> SourceTable:

        config = self.rest_config(job, secrets, options)
        try:
            (resource,) = rest_api_resources(config)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:  # dlt's config validation
            raise JobError(
                f"job {job.job_id}: the api sheet row ({job.rest and job.rest.get('origin')}) "
                f"is not a valid dlt rest_api configuration: {type(exc).__name__}: "
                f"{short_reason(exc)}"
            ) from None
        return SourceTable(resource)

    def check_connection(self, job: JobConfig, secrets: dict[str, Secret]) -> None:
        """One request for the endpoint's first page, with the configured auth."""

        spec = self._spec(job)
        base_url = check_base_url(job.source_name, need_base_url(job, secrets))
        client = RESTClient(
            base_url=base_url,
            auth=make_auth(job, secrets),
            session=make_session(job.source_name, base_url, self.exchange),
        )
        method: Any = spec.get("method") or "GET"  # GET or POST (validated with the config)
        response = client.request(
            spec["path"],
            method=method,
            params=dict(spec.get("params") or {}),
            json=spec.get("json"),
        )
        if response.status_code >= 400:
            raise http_error(
                job.source_name, method, response.url, response.status_code, response.reason
            )


def need_base_url(job: JobConfig, secrets: dict[str, Secret]) -> str:
    value = reveal(secrets, "base_url")
    if not value:
        raise JobError(f"source {job.source_name!r} has no base_url secret")
    return value
