"""Connection secrets: where they come from, and how they never leak.

For `source_name = postgres_erp` and key `password` the value is looked up in order:
1. environment variable `SOURCES__POSTGRES_ERP__PASSWORD` (dlt's convention),
2. the local secrets file (`.dlt/secrets.toml`), section `[sources.postgres_erp]`,
3. Azure Key Vault secret `postgres-erp-password`, when a vault is configured.

Each place is a `SecretProvider`; `SecretResolver` asks them in order. Values are wrapped in
`Secret`, whose repr/str/JSON never show the value, and every sensitive value resolved is
remembered by the resolver's `Redactor` so error texts and log records can be scrubbed.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ingest.errors import JobError, SecretNotFoundError
from ingest.secrets import keyvault  # (module: tests put a stand-in in its place)
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


def env_var_name(source_name: str, key: str) -> str:
    return f"SOURCES__{source_name.upper()}__{key.upper()}"


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
        name = env_var_name(source_name, key)
        value = self._env.get(name) or None
        check_not_key_vault_reference(name, value)
        return value

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

    def get(self, source_name: str, key: str) -> str | None:
        section = self._load().get(source_name) or {}
        # dlt also accepts [sources.<name>.credentials]
        value = section.get(key, (section.get("credentials") or {}).get(key))
        return None if value is None else str(value)

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
        self._lock = threading.Lock()

    def _lookup(self, source_name: str, key: str) -> str | None:
        with self._lock:
            if (source_name, key) in self._cache:
                return self._cache[(source_name, key)]
        value = None
        for provider in self.providers:
            value = provider.get(source_name, key)
            if value is not None:
                break
        with self._lock:
            self._cache[(source_name, key)] = value
        if value is not None and key in SENSITIVE_KEYS:
            self.redactor.add(value)
        return value

    def resolve(
        self, source_name: str, required: Iterable[str], optional: Iterable[str] = ()
    ) -> dict[str, Secret]:
        """The source's connection values; raises SecretNotFoundError naming what is missing
        and every place that was searched."""
        found: dict[str, Secret] = {}
        missing: list[str] = []
        for key in required:
            value = self._lookup(source_name, key)
            if value is None:
                missing.append(key)
            else:
                found[key] = Secret(value)
        for key in optional:
            value = self._lookup(source_name, key)
            if value is not None:
                found[key] = Secret(value)
        if missing:
            places = "; ".join(
                " or ".join(p.where(source_name, key) for p in self.providers) for key in missing
            )
            raise SecretNotFoundError(
                f"source {source_name!r} is missing connection setting(s) "
                f"{', '.join(missing)}: set {places}"
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
