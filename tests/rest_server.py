"""A real HTTP API for the REST source tests: http.server in a thread on 127.0.0.1.

One resource (`items`) served under `/v1/<style>/items` in every pagination style the
framework supports, filtered by a `since` cursor parameter (inclusive: updated_at >= since),
behind a configurable auth check. Every request is recorded; failures can be queued
(`fail_next`) to test retries.

Records: id 1..N, `updated_at` grows by one second every three ids (so several records share
a cursor value and the incremental boundary is exercised), a float, a nested object.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

STYLES = ("json_link", "header_link", "offset", "page_number", "cursor", "single_page")
SERVER_PAGE = 97  # page size for the styles where the server decides it
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def make_record(record_id: int) -> dict[str, Any]:
    stamp = BASE_TIME + dt.timedelta(seconds=record_id // 3)
    return {
        "id": record_id,
        "name": f"item {record_id}",
        "updated_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "amount": round(record_id * 1.25, 2),
        "meta": {"group": record_id % 7, "flag": record_id % 2 == 0},
    }


@dataclass
class Auth:
    """What the server accepts: kind in none|bearer|api_key_header|api_key_query|basic."""

    kind: str = "none"
    secret: str = ""
    name: str = "X-API-Key"
    username: str = "ingest"


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class ApiState:
    records: list[dict[str, Any]] = field(default_factory=list)
    auth: Auth = field(default_factory=Auth)
    #: (status, headers) answered, in order, before normal service resumes
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    #: answer every request with this status (e.g. 503 forever)
    fail_always: int | None = None
    #: host:port written into next-page links (default: the server's own)
    link_host: str | None = None
    hits: list[Hit] = field(default_factory=list)
    #: echo the request line (path and query, as received) in every JSON object answered, as
    #: some APIs do in their errors: an api_key sent as a query parameter comes back with it
    echo_request: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if self.server.state.echo_request and isinstance(body, dict):
            body = {**body, "request": self.path}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self, query: dict[str, str]) -> bool:
        auth = self.server.state.auth
        header = self.headers.get("Authorization", "")
        if auth.kind == "none":
            return True
        if auth.kind == "bearer":
            return header == f"Bearer {auth.secret}"
        if auth.kind == "api_key_header":
            return self.headers.get(auth.name) == auth.secret
        if auth.kind == "api_key_query":
            return query.get(auth.name) == auth.secret
        if auth.kind == "basic":
            expected = base64.b64encode(f"{auth.username}:{auth.secret}".encode()).decode()
            return header == f"Basic {expected}"
        raise AssertionError(auth.kind)

    def _link(self, path: str, query: dict[str, str], **changes: Any) -> str:
        state = self.server.state
        host = state.link_host or f"127.0.0.1:{self.server.server_address[1]}"
        # next links never carry the credentials (the client adds them to every request)
        kept = {k: v for k, v in query.items() if k != state.auth.name}
        kept.update({k: str(v) for k, v in changes.items()})
        return f"http://{host}{path}?{urlencode(kept)}"

    # -- the API ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        status = 200
        try:
            with state.lock:
                failure = state.fail_next.pop(0) if state.fail_next else None
                records = list(state.records)
            if failure is None and state.fail_always:
                failure = (state.fail_always, {})
            if failure is not None:
                status = failure[0]
                self._send(status, {"error": "injected"}, failure[1])
                return
            if not self._authorized(query):
                status = 401
                self._send(401, {"error": "unauthorized"})
                return
            segments = parts.path.strip("/").split("/")
            if len(segments) != 3 or segments[0] != "v1" or segments[2] != "items":
                status = 404
                self._send(404, {"error": "no such endpoint"})
                return
            style = segments[1]
            if style not in STYLES:
                status = 404
                self._send(404, {"error": "no such endpoint"})
                return
            since = query.get("since")
            if since:
                records = [r for r in records if r["updated_at"] >= since]
            self._page(style, parts.path, query, records)
        finally:
            with state.lock:
                state.hits.append(Hit(self.command, parts.path, query, status))

    def _page(self, style: str, path: str, query: dict[str, str], records: list[dict]) -> None:
        if style == "single_page":
            self._send(200, records)
        elif style == "json_link":
            after = int(query.get("after") or 0)
            page = [r for r in records if r["id"] > after][:SERVER_PAGE]
            more = page and page[-1]["id"] < records[-1]["id"]
            nxt = self._link(path, query, after=page[-1]["id"]) if more else None
            self._send(200, {"data": page, "next": nxt})
        elif style == "header_link":
            after = int(query.get("after") or 0)
            page = [r for r in records if r["id"] > after][:SERVER_PAGE]
            headers = {}
            if page and page[-1]["id"] < records[-1]["id"]:
                headers["Link"] = f'<{self._link(path, query, after=page[-1]["id"])}>; rel="next"'
            self._send(200, page, headers)
        elif style == "offset":
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
            self._send(200, {"items": records[offset : offset + limit], "total": len(records)})
        elif style == "page_number":
            page_no, per_page = int(query.get("page", 1)), int(query.get("per_page", 10))
            start = (page_no - 1) * per_page
            self._send(200, {"results": records[start : start + per_page], "page": page_no})
        elif style == "cursor":
            token = query.get("cursor")
            after = int(base64.urlsafe_b64decode(token).decode()) if token else 0
            page = [r for r in records if r["id"] > after][:SERVER_PAGE]
            more = page and page[-1]["id"] < records[-1]["id"]
            cursor = base64.urlsafe_b64encode(str(page[-1]["id"]).encode()).decode()
            self._send(200, {"records": page, "cursors": {"next": cursor if more else None}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ApiState):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class ApiServer:
    """Start with `with ApiServer() as api:`; `api.base_url` is http://127.0.0.1:<port>/."""

    def __init__(self, count: int = 0, auth: Auth | None = None):
        self.state = ApiState(auth=auth or Auth())
        self.add_records(count)
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def add_records(self, count: int) -> list[dict[str, Any]]:
        with self.state.lock:
            start = len(self.state.records) + 1
            new = [make_record(i) for i in range(start, start + count)]
            self.state.records.extend(new)
        return new

    @property
    def records(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.records)

    def hits(self, path: str | None = None) -> list[Hit]:
        with self.state.lock:
            return [h for h in self.state.hits if path is None or h.path == path]

    def clear_hits(self) -> None:
        with self.state.lock:
            self.state.hits.clear()
