"""A small local stand-in for Azure Key Vault's REST API (no emulator exists).

HTTPS on 127.0.0.1 with a self-signed certificate, so the real `azure-keyvault-secrets`
`SecretClient` talks to it unchanged (it refuses plain http). What it speaks:

- the challenge flow: a request without `Authorization: Bearer <token>` gets 401 with
  `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"`; the SDK then asks the credential for a token and resends;
- `GET /secrets/{name}[/{version}]`, `PUT /secrets/{name}`, `GET /secrets` (paged, nextLink);
- 404 `SecretNotFound` for a missing secret;
- programmable faults (`fail(...)`): e.g. 429 with Retry-After twice, or 403 forever;
- a request log (`requests`) for assertions: method, path, status, authorised or not.

The client side needs, test-only: `verify_challenge_resource=False` (the challenge names
vault.azure.net, the server is 127.0.0.1), `connection_verify=<cert>` and `FakeCredential`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TENANT = "00000000-0000-0000-0000-0000000000aa"
TOKEN = "standin-access-token"
SCOPE = "https://vault.azure.net/.default"
PAGE_SIZE = 3

_cert_lock = threading.Lock()
_cert_paths: tuple[str, str] | None = None


def standin_certificate() -> tuple[str, str]:
    """(cert.pem, key.pem) of a self-signed certificate for 127.0.0.1/localhost, made once per
    test process with the `cryptography` package."""
    global _cert_paths
    with _cert_lock:
        if _cert_paths is None:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.x509.oid import NameOID

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        ]
                    ),
                    critical=False,
                )
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            folder = Path(tempfile.mkdtemp(prefix="kv-standin-"))
            cert_path, key_path = folder / "cert.pem", folder / "key.pem"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            _cert_paths = (str(cert_path), str(key_path))
        return _cert_paths


class FakeCredential:
    """A TokenCredential: hands out the stand-in's token and counts the calls."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.calls.append((scopes, kwargs))
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    authorized: bool

    @property
    def secret_name(self) -> str | None:
        match = re.match(r"^/secrets/([^/]+)", self.path)
        return match.group(1) if match else None


@dataclass
class Fault:
    status: int
    method: str | None
    name: str | None
    times: int | None  # None: forever
    headers: dict[str, str] = field(default_factory=dict)
    code: str = ""


class KeyVaultStandIn:
    """Run with `with KeyVaultStandIn() as vault:`; `vault.url` is the vault URL."""

    def __init__(self, page_size: int = PAGE_SIZE):
        self.page_size = page_size
        self.secrets: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self.cert_path, key_path = standin_certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> KeyVaultStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- test helpers ---------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """Test-only SecretClient options for this server."""
        return {"verify_challenge_resource": False, "connection_verify": self.cert_path}

    def put(self, name: str, value: str, enabled: bool = True) -> None:
        with self._lock:
            self._store(name, value, {}, "", enabled)

    def value(self, name: str) -> str | None:
        with self._lock:
            versions = self.secrets.get(name)
            return versions[-1]["value"] if versions else None

    def fail(
        self,
        status: int,
        *,
        name: str | None = None,
        method: str | None = None,
        times: int | None = None,
        retry_after: float | None = None,
        code: str = "",
    ) -> None:
        """Answer matching authorised requests with `status` (`times` times, or forever)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self.faults.append(Fault(status, method, name, times, headers, code))

    def authorized_requests(
        self, method: str | None = None, name: str | None = None
    ) -> list[Request]:
        return [
            r
            for r in list(self.requests)
            if r.authorized
            and (method is None or r.method == method)
            and (name is None or r.secret_name == name)
        ]

    def writes(self) -> list[Request]:
        return self.authorized_requests("PUT")

    # ---- server side ------------------------------------------------------------------------

    def _store(
        self, name: str, value: str, tags: dict, content_type: str, enabled: bool = True
    ) -> dict[str, Any]:
        now = int(time.time())
        bundle = {
            "value": value,
            "id": f"{self.url}/secrets/{name}/{uuid.uuid4().hex}",
            "attributes": {
                "enabled": enabled,
                "created": now,
                "updated": now,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": tags or {},
        }
        if content_type:
            bundle["contentType"] = content_type
        self.secrets.setdefault(name, []).append(bundle)
        return bundle

    def _fault_for(self, method: str, name: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method not in (None, method) or fault.name not in (None, name):
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault
        return None

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, dict, Any]:
        parsed = urlparse(raw_path)
        path, query = parsed.path.rstrip("/") or "/", parse_qs(parsed.query)
        authorized = headers.get("Authorization") == f"Bearer {TOKEN}"
        status, extra, payload = self._dispatch(method, path, query, body, authorized)
        self.requests.append(Request(method, path, query, status, authorized))
        return status, extra, payload

    def _dispatch(
        self, method: str, path: str, query: dict, body: bytes, authorized: bool
    ) -> tuple[int, dict, Any]:
        if "api-version" not in query:
            return 400, {}, _error("BadParameter", "api-version is required")
        if not authorized:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"'
            )
            return 401, {"WWW-Authenticate": challenge}, _error("Unauthorized", "AKV10000")
        match = re.match(r"^/secrets(?:/([^/]+))?(?:/([^/]*))?$", path)
        if not match:
            return 404, {}, _error("NotFound", "no such route")
        name, version = match.group(1), match.group(2)
        fault = self._fault_for(method, name)
        if fault is not None:
            code = fault.code or {403: "Forbidden", 429: "Throttled"}.get(fault.status, "Error")
            payload = _error(code, f"stand-in fault {fault.status}")
            if fault.status == 403 and not fault.code:
                payload["error"]["innererror"] = {"code": "ForbiddenByRbac"}
            return fault.status, dict(fault.headers), payload
        if method == "GET" and name is None:
            return 200, {}, self._list(query)
        if method == "GET":
            with self._lock:
                versions = self.secrets.get(name) or []
                bundle = None
                if version:
                    bundle = next((b for b in versions if b["id"].endswith("/" + version)), None)
                elif versions:
                    bundle = versions[-1]
            if bundle is None:
                return (
                    404,
                    {},
                    _error(
                        "SecretNotFound",
                        f"A secret with (name/id) {name} was not found in this key vault.",
                    ),
                )
            if not bundle["attributes"]["enabled"]:
                return (
                    403,
                    {},
                    _error("Forbidden", "Operation get is not allowed on a disabled secret."),
                )
            return 200, {}, bundle
        if method == "PUT" and name is not None and not version:
            data = json.loads(body or b"{}")
            if "value" not in data:
                return 400, {}, _error("BadParameter", "value is required")
            with self._lock:
                bundle = self._store(
                    name, data["value"], data.get("tags") or {}, data.get("contentType") or ""
                )
            return 200, {}, bundle
        return 405, {}, _error("MethodNotAllowed", f"{method} {path}")

    def _list(self, query: dict) -> dict[str, Any]:
        skip = int((query.get("$skiptoken") or ["0"])[0])
        size = min(int((query.get("maxresults") or [self.page_size])[0]), self.page_size)
        with self._lock:
            names = sorted(self.secrets)
            page = names[skip : skip + size]
            items = []
            for name in page:
                latest = self.secrets[name][-1]
                items.append(
                    {
                        "id": f"{self.url}/secrets/{name}",
                        "attributes": latest["attributes"],
                        "tags": latest["tags"],
                    }
                )
        next_link = None
        if skip + size < len(names):
            next_link = (
                f"{self.url}/secrets?api-version={query['api-version'][0]}&$skiptoken={skip + size}"
            )
        return {"value": items, "nextLink": next_link}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _handler_for(vault: KeyVaultStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = vault.handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_DELETE = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler
