"""A SQL source's whole connection as one value: the connection string (or the `query` of a
credentials table) parsed with dlt's own credential classes into our connection keys.

dlt documents SQL source credentials first as a connection string,
`credentials = "postgresql://user:password@host:5432/database"` in `[sources.<name>]` of
`secrets.toml` or `SOURCES__<NAME>__CREDENTIALS` in the environment. `parse_connection_string`
turns such a value into the keys the builders use (`host`, `port`, `database`, `username`,
`password`, and per source type `sslmode`, `driver`, `encrypt`, `trust_server_certificate`,
`service_name`, `sid`, `path`), through `ConnectionStringCredentials` or its database subclass
(`PostgresCredentials`, `MsSqlCredentials`): no hand parsing. The secret resolver
(`ingest.secrets.resolver`) decides where the value comes from and in which order.

Errors (`BadConnectionValue`) say what is wrong with the value, never the value itself: a
connection string holds a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any


class BadConnectionValue(ValueError):
    """A connection value that cannot be used; the text names no value."""


@dataclass(frozen=True)
class ConnectionSpec:
    """How one source type's connection string reads."""

    #: dlt's credential class ("module:Class")
    dlt_class: str
    #: URL schemes (the part before `+driver`) accepted for this source type
    schemes: tuple[str, ...]
    #: an example, for messages (no real value)
    example: str
    #: query parameter (lower case) -> our connection key
    query_keys: Mapping[str, str]
    #: our key that the URL's database part becomes
    database_key: str = "database"


_BASE = "dlt.common.configuration.specs:ConnectionStringCredentials"

SPECS: dict[str, ConnectionSpec] = {
    "postgresql": ConnectionSpec(
        "dlt.destinations.impl.postgres.configuration:PostgresCredentials",
        ("postgresql", "postgres"),
        "postgresql://user:password@host:5432/database",
        {"sslmode": "sslmode"},
    ),
    "mysql": ConnectionSpec(
        _BASE,
        ("mysql", "mariadb"),
        "mysql://user:password@host:3306/database",
        {},
    ),
    "mssql": ConnectionSpec(
        "dlt.destinations.impl.mssql.configuration:MsSqlCredentials",
        ("mssql",),
        "mssql://user:password@host:1433/database?driver=ODBC+Driver+18+for+SQL+Server",
        {
            "driver": "driver",
            "encrypt": "encrypt",
            "trustservercertificate": "trust_server_certificate",
            "trust_server_certificate": "trust_server_certificate",
        },
    ),
    "oracle": ConnectionSpec(
        _BASE,
        ("oracle",),
        "oracle://user:password@host:1521/?service_name=SERVICE (or .../SID)",
        {"service_name": "service_name", "sid": "sid"},
        database_key="sid",
    ),
    "sqlite": ConnectionSpec(
        _BASE,
        ("sqlite",),
        "sqlite:////absolute/path/to/file.db",
        {},
        database_key="path",
    ),
}


def example(source_type: str) -> str:
    """An example connection string of this source type, for messages."""
    spec = SPECS.get(source_type)
    return spec.example if spec else ""


def _credentials_class(spec: ConnectionSpec) -> Any:
    module, _, name = spec.dlt_class.partition(":")
    return getattr(import_module(module), name)


def parse_connection(source_type: str, value: Any) -> dict[str, str]:
    """Our connection keys from a whole connection value: a connection string, or dlt's
    credentials table (`[sources.<name>.credentials]`: drivername, host, port, database,
    username, password and a `query` table; its other keys are read as they are by the
    resolver)."""
    if isinstance(value, Mapping):
        spec = SPECS[source_type]
        scheme = str(value.get("drivername") or "").split("+", 1)[0].lower()
        if scheme and scheme not in spec.schemes:
            raise BadConnectionValue(
                f"its drivername {scheme!r} is not one of a {source_type} source "
                f"({', '.join(spec.schemes)})"
            )
        if value.get("port") not in (None, "") and not str(value["port"]).isdigit():
            raise BadConnectionValue("its port is not a number")
        return connection_keys(source_type, value, where="credentials table")
    return parse_connection_string(source_type, value)


def parse_connection_string(source_type: str, value: Any) -> dict[str, str]:
    """Our connection keys from a connection string of `source_type` (None values left out).
    Raises BadConnectionValue saying what is wrong, never quoting the value."""
    spec = SPECS.get(source_type)
    if spec is None:
        raise BadConnectionValue(
            f"a {source_type} source takes its settings as separate keys, not a connection string"
        )
    if not isinstance(value, str):
        raise BadConnectionValue(
            f"it holds {_kind(value)}, not a connection string like {spec.example}"
        )
    text = value.strip()
    if "://" not in text:
        raise BadConnectionValue(f"it is not a connection string like {spec.example}")
    credentials = _credentials_class(spec)()
    try:
        credentials.parse_native_representation(text)
    except Exception:  # dlt's InvalidConnectionString (and the URL parser's errors)
        raise BadConnectionValue(
            f"it is not a valid connection string (expected the form {spec.example})"
        ) from None
    scheme = str(credentials.drivername or "").split("+", 1)[0].lower()
    if scheme not in spec.schemes:
        raise BadConnectionValue(
            f"its scheme {scheme + '://'!r} is not one of a {source_type} source "
            f"({', '.join(s + '://' for s in spec.schemes)})"
        )
    return connection_keys(source_type, _url_parts(credentials), where="connection string")


def _url_parts(credentials: Any) -> dict[str, Any]:
    return {
        "host": credentials.host,
        "port": credentials.port,
        "database": credentials.database,
        "username": credentials.username,
        "password": credentials.password,
        "query": dict(credentials.query or {}),
    }


def connection_keys(source_type: str, parts: Mapping[str, Any], where: str) -> dict[str, str]:
    """host/port/database/username/password and the query parameters of one connection, as our
    keys. `where` names the part of the value (for messages)."""
    spec = SPECS[source_type]
    keys: dict[str, str] = {}
    for name in ("host", "port", "username", "password"):
        if parts.get(name) not in (None, ""):
            keys[name] = str(parts[name])
    if parts.get("database") not in (None, ""):
        keys[spec.database_key] = str(parts["database"])
    query = parts.get("query") or {}
    if not isinstance(query, Mapping):
        raise BadConnectionValue(f"the {where}'s query is {_kind(query)}, not a table")
    for raw_name, raw_value in query.items():
        name = str(raw_name).lower()
        if name not in spec.query_keys:
            accepted = ", ".join(sorted(set(spec.query_keys))) or "none"
            raise BadConnectionValue(
                f"the {where}'s parameter {str(raw_name)!r} is not used for a {source_type} "
                f"source (accepted parameters: {accepted})"
            )
        if isinstance(raw_value, list | tuple):  # a parameter given twice
            raise BadConnectionValue(f"the {where} gives the parameter {name!r} twice")
        keys[spec.query_keys[name]] = str(raw_value)
    return keys


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"
