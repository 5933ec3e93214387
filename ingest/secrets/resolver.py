"""Connection secrets: where they come from, and how they never leak.

For `source_name = postgres_erp` and key `password` the value is looked up in order:
1. the environment (dlt's convention),
2. the local secrets file (`.dlt/secrets.toml`), section `[sources.postgres_erp]`,
3. Azure Key Vault, when a vault is configured.

In each place a key is found in the forms dlt documents for SQL sources, first match wins:
- the key itself: `SOURCES__POSTGRES_ERP__PASSWORD`, `[sources.postgres_erp] password`,
  secret `postgres-erp-password`;
- the credentials table: `SOURCES__POSTGRES_ERP__CREDENTIALS__PASSWORD`,
  `[sources.postgres_erp.credentials] password`;
- the connection string: `SOURCES__POSTGRES_ERP__CREDENTIALS`, `[sources.postgres_erp]
  credentials = "postgresql://user:password@host:5432/db"`, secret `postgres-erp-credentials`,
  parsed by the source type's `parse` (dlt's credential classes, `ingest.sources.credentials`).
A place is only asked for what the places before it did not have, so an environment variable
still overrides one part of a connection string kept in the secrets file.

Each place is a `SecretProvider`; `SecretResolver` asks them in order. Values are wrapped in
`Secret`, whose repr/str/JSON never show the value, and every sensitive value resolved (a
password parsed out of a connection string, and the connection string itself, included) is
remembered by the resolver's `Redactor` so error texts and log records can be scrubbed.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ingest.errors import JobError, SecretNotFoundError
from ingest.secrets import keyvault  # (module: tests put a stand-in in its place)
from ingest.secrets.keyvault import vault_secret_name as _vault_name
from ingest.secrets.redaction import MASK, Redactor, register_redactor
from ingest.settings import environment

#: Keys whose values are secret; others (host, port, database, username) are plain settings.
SENSITIVE_KEYS = frozenset(
    {"password", "token", "api_key", "client_secret", "secret", "account_key", "private_key"}
)


class Secret:
    """A secret value that does not show itself: `str`, `repr` and JSON give `***`."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:  # f"{secret}" and format() also give the mask
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # pickling (process pools) keeps the value, nothing prints it
        return (Secret, (self._value,))

    def __json__(self) -> str:  # pragma: no cover - for encoders that honour it
        return MASK


def reveal(secrets: Mapping[str, Secret], key: str, default: str | None = None) -> str | None:
    """The plain value of connection setting `key` (for building a connection), or `default`."""
    value = secrets.get(key)
    return value.reveal() if value is not None else default


#: the key that holds a whole connection: a connection string or dlt's credentials table
CONNECTION_KEY = "credentials"

#: turns a connection value (a connection string, or a credentials table) into connection keys;
#: raises ValueError saying what is wrong without quoting the value (the source type's builder)
ConnectionParser = Callable[[Any], Mapping[str, str]]


def env_var_name(source_name: str, key: str) -> str:
    return f"SOURCES__{source_name.upper()}__{key.upper()}"


class CredentialsFormError(JobError):
    """A connection value in a form the source type cannot use (names the key, never the value)."""


class NotAConnection(ValueError):
    """A provider holds something under the connection key that cannot be one (e.g. a list)."""


class SecretProvider(Protocol):
    """One place secrets can come from."""

    #: short human name used in messages, e.g. "environment", ".dlt/secrets.toml"
    name: str

    def get(self, source_name: str, key: str) -> str | None: ...

    def where(self, source_name: str, key: str) -> str:
        """Where this provider looked, for 'not found' messages (never a value)."""
        ...


class EnvSecrets:
    name = "environment"

    def __init__(self, env: Mapping[str, str] | None = None):
        self._env = environment() if env is None else env

    def get(self, source_name: str, key: str) -> str | None:
        for name in (
            env_var_name(source_name, key),
            # dlt's credentials table in the environment: SOURCES__<NAME>__CREDENTIALS__<KEY>
            env_var_name(source_name, f"{CONNECTION_KEY}__{key}"),
        ):
            value = self._env.get(name) or None
            check_not_key_vault_reference(name, value)
            if value is not None or key == CONNECTION_KEY:
                return value
        return None

    def where(self, source_name: str, key: str) -> str:
        return f"environment variable {env_var_name(source_name, key)}"


# --- unresolved App Service Key Vault references ----------------------------------------------
KEY_VAULT_REFERENCE_PREFIX = "@microsoft.keyvault("


class UnresolvedKeyVaultReferenceError(JobError):
    """An app setting still holds `@Microsoft.KeyVault(...)`: App Service could not resolve it."""


def check_not_key_vault_reference(setting: str, value: str | None) -> None:
    """Raise when `value` is a Key Vault reference App Service left unresolved (it then hands
    the literal text to the app). Names the setting, never shows the value."""
    if value is not None and value.lstrip().lower().startswith(KEY_VAULT_REFERENCE_PREFIX):
        raise UnresolvedKeyVaultReferenceError(
            f"app setting {setting} holds an unresolved Key Vault reference "
            "(@Microsoft.KeyVault(...)): App Service could not read the secret. Check the "
            "reference (SecretUri or VaultName/SecretName), that the secret exists and is "
            "enabled, and that the function app's identity has the 'Key Vault Secrets User' "
            "role on the vault (the portal's Environment variables page shows the status)"
        )


# ---------------------------------------------------------------------------------------------


class TomlSecrets:
    """`[sources.<source_name>]` sections of a dlt-style secrets.toml file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = str(self.path)
        self._sections: dict[str, dict] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict]:
        with self._lock:
            if self._sections is None:
                if self.path.exists():
                    with self.path.open("rb") as handle:
                        data = tomllib.load(handle)
                    self._sections = dict(data.get("sources", {}))
                else:
                    self._sections = {}
            return self._sections

    def _section(self, source_name: str) -> Mapping[str, Any]:
        section = self._load().get(source_name)
        if section is None:
            return {}
        if not isinstance(section, Mapping):
            raise NotAConnection(f"[sources] {source_name} is not a table")
        return section

    def get(self, source_name: str, key: str) -> str | None:
        section = self._section(source_name)
        value = section.get(key)
        if value is None and key != CONNECTION_KEY:
            # dlt also accepts [sources.<name>.credentials]
            nested = section.get(CONNECTION_KEY)
            if isinstance(nested, Mapping):
                value = nested.get(key)
        if isinstance(value, Mapping | list):
            return None
        return None if value is None else str(value)

    def connection(self, source_name: str) -> Any:
        """What `[sources.<name>] credentials` holds as written: a connection string, dlt's
        credentials table, or something else (the resolver says what is wrong with it)."""
        return self._section(source_name).get(CONNECTION_KEY)

    def where(self, source_name: str, key: str) -> str:
        # absolute: a relative default (.dlt/secrets.toml) depends on the current folder
        return f"{self.path.absolute()} [sources.{source_name}] {key} (INGEST_SECRETS_FILE)"


class StaticSecrets:
    """Secrets given in code (the embedded demo, tests)."""

    name = "built-in"

    def __init__(self, values: Mapping[str, Mapping[str, str]]):
        self._values = {k: dict(v) for k, v in values.items()}

    def get(self, source_name: str, key: str) -> str | None:
        return self._values.get(source_name, {}).get(key)

    def where(self, source_name: str, key: str) -> str:
        return f"built-in secrets for {source_name}"


class SecretResolver:
    """Asks each provider in order; caches what it found for the life of the resolver."""

    def __init__(self, providers: Iterable[SecretProvider], redactor: Redactor | None = None):
        self.providers = list(providers)
        self.redactor = redactor or Redactor()
        self._cache: dict[tuple[str, str], str | None] = {}
        #: (provider index, source) -> the keys its connection value holds
        self._connections: dict[tuple[int, str], Mapping[str, str]] = {}
        self._lock = threading.Lock()

    def _connection(
        self, index: int, source_name: str, parse: ConnectionParser, forms: str
    ) -> Mapping[str, str]:
        """The keys of the connection value (string or table) provider `index` holds for the
        source ({} when it holds none); a value in a wrong form is a CredentialsFormError."""
        with self._lock:
            if (index, source_name) in self._connections:
                return self._connections[(index, source_name)]
        provider = self.providers[index]
        reader = getattr(provider, "connection", None)
        where = provider.where(source_name, CONNECTION_KEY)
        try:
            raw = reader(source_name) if reader else provider.get(source_name, CONNECTION_KEY)
            if isinstance(raw, str):
                self._remember_secret(raw)
            keys = dict(parse(raw)) if raw not in (None, "") else {}
        except (NotAConnection, ValueError) as exc:
            raise CredentialsFormError(
                f"connection of source {source_name!r} in {where} cannot be used: {exc}. "
                f"Accepted forms: {forms}"
            ) from None
        for key, value in keys.items():
            if key in SENSITIVE_KEYS:
                self._remember_secret(value)
        with self._lock:
            self._connections[(index, source_name)] = keys
        return keys

    def _remember_secret(self, value: str) -> None:
        self.redactor.add(value)

    def _lookup(
        self,
        source_name: str,
        key: str,
        parse: ConnectionParser | None = None,
        forms: str = "",
    ) -> str | None:
        with self._lock:
            if (source_name, key) in self._cache:
                return self._cache[(source_name, key)]
        value = None
        for index, provider in enumerate(self.providers):
            try:
                value = provider.get(source_name, key)
            except NotAConnection as exc:
                raise CredentialsFormError(
                    f"source {source_name!r} in {provider.where(source_name, key)}: {exc}. "
                    f"Accepted forms: {forms}"
                ) from None
            if value is None and parse is not None:
                value = self._connection(index, source_name, parse, forms).get(key)
            if value is not None:
                break
        with self._lock:
            self._cache[(source_name, key)] = value
        if value is not None and key in SENSITIVE_KEYS:
            self._remember_secret(value)
        return value

    def accepted_forms(self, source_name: str, example: str = "", keys: Iterable[str] = ()) -> str:
        """The ways to give this source's connection, for messages (no values)."""
        env = env_var_name(source_name, CONNECTION_KEY)
        string = f'"{example}"' if example else '"<scheme>://user:password@host:port/database"'
        names = ", ".join(keys) or "host, port, database, username, password"
        first = next(iter(keys), "host")
        return "; ".join(
            (
                f"(1) a connection string {string} in environment variable {env}, in the "
                f'secrets file as [sources.{source_name}] credentials = "...", or in Key Vault '
                f"as secret '{_vault_name(source_name, CONNECTION_KEY)}'",
                f"(2) a table [sources.{source_name}.credentials] with {names}",
                f'(3) separate keys ({names}): [sources.{source_name}] {first} = "...", '
                f"environment variable {env_var_name(source_name, first)}, Key Vault secret "
                f"'{_vault_name(source_name, first)}'",
            )
        )

    def resolve(
        self,
        source_name: str,
        required: Iterable[str],
        optional: Iterable[str] = (),
        *,
        parse: ConnectionParser | None = None,
        example: str = "",
    ) -> dict[str, Secret]:
        """The source's connection values; raises SecretNotFoundError naming what is missing
        and every place that was searched, CredentialsFormError for a connection value in a
        wrong form (naming its key and the accepted forms).

        `parse`: the source type's reader of a whole connection (a connection string or dlt's
        credentials table); without it only separate keys are read. `example`: a connection
        string of the source type, for messages."""
        required = tuple(required)
        forms = self.accepted_forms(source_name, example, required) if parse is not None else ""
        found: dict[str, Secret] = {}
        missing: list[str] = []
        for key in required:
            value = self._lookup(source_name, key, parse, forms)
            if value is None:
                missing.append(key)
            else:
                found[key] = Secret(value)
        for key in optional:
            value = self._lookup(source_name, key, parse, forms)
            if value is not None:
                found[key] = Secret(value)
        if missing:
            places = "; ".join(
                " or ".join(p.where(source_name, key) for p in self.providers) for key in missing
            )
            whole = f"; or give the whole connection as {forms.split('; (3)')[0]}" if forms else ""
            raise SecretNotFoundError(
                f"source {source_name!r} is missing connection setting(s) "
                f"{', '.join(missing)}: set {places}{whole}"
            )
        return found


def default_providers(
    secrets_file: Path, env: Mapping[str, str] | None = None
) -> list[SecretProvider]:
    """Environment, then the secrets file. (Key Vault is appended by `ingest.secrets.keyvault`.)"""
    return [EnvSecrets(env), TomlSecrets(secrets_file)]


def build_resolver(
    secrets_file: Path,
    key_vault_url: str | None = None,
    env: Mapping[str, str] | None = None,
    redactor: Redactor | None = None,
) -> SecretResolver:
    """The resolver for a run: environment, secrets file, then Key Vault when configured."""
    providers = default_providers(secrets_file, env)
    if key_vault_url:
        providers.append(keyvault.KeyVaultSecrets(key_vault_url))
    resolver = SecretResolver(providers, redactor)
    register_redactor(resolver.redactor)  # the logging filter scrubs its values too
    return resolver
