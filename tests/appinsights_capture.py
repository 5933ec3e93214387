"""A local stand-in for the Application Insights ingestion endpoint.

Accepts `POST /v2.1/track` (gzip or plain JSON, one array of envelopes or newline-delimited
JSON), keeps every envelope and the raw body text, and answers like the service does:
`{"itemsReceived": n, "itemsAccepted": n, "errors": []}`. Use it with the connection string
`InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=<server.url>`.

Also runnable on its own (`python -m tests.appinsights_capture PORT`), printing what arrives.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"


def _decode(body: bytes, encoding: str) -> str:
    if "gzip" in encoding.lower() or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8")


def _parse(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # newline-delimited envelopes
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return data if isinstance(data, list) else [data]


class CaptureServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.envelopes: list[dict[str, Any]] = []
        self.bodies: list[str] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                text = _decode(body, self.headers.get("Content-Encoding") or "")
                with capture._lock:
                    capture.requests.append(self.path)
                    capture.bodies.append(text)
                items = _parse(text) if self.path.rstrip("/").endswith("/track") else []
                with capture._lock:
                    capture.envelopes.extend(items)
                reply = json.dumps(
                    {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}"

    def start(self) -> CaptureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --------------------------------------------------------------------------------------
    # views

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.envelopes)

    def raw_text(self) -> str:
        with self._lock:
            return "\n".join(self.bodies)

    def of_type(self, base_type: str) -> Iterator[dict[str, Any]]:
        for envelope in self.snapshot():
            if (envelope.get("data") or {}).get("baseType") == base_type:
                yield envelope

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """baseData of custom events (optionally only `name`)."""
        return [
            e["data"]["baseData"]
            for e in self.of_type("EventData")
            if name is None or e["data"]["baseData"].get("name") == name
        ]

    def exceptions(self) -> list[dict[str, Any]]:
        return [e["data"]["baseData"] for e in self.of_type("ExceptionData")]

    def messages(self) -> list[dict[str, Any]]:
        return [e["data"]["baseData"] for e in self.of_type("MessageData")]

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """(data point, properties) of every exported point of metric `name`."""
        points = []
        for envelope in self.of_type("MetricData"):
            base = envelope["data"]["baseData"]
            for point in base.get("metrics") or []:
                if point.get("name") == name:
                    points.append((point, base.get("properties") or {}))
        return points


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 0
    server = CaptureServer(port=port).start()
    sys.stdout.write(f"capturing on {server.url}\n{server.connection_string}\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for envelope in server.snapshot():
            sys.stdout.write(json.dumps(envelope) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
