"""Connection secrets from Azure Key Vault, read with the app's identity.

`KeyVaultSecrets` is the third `SecretProvider` of `ingest.secrets.resolver` (after
environment variables and the local secrets file): source `postgres_erp`, key `password` -> secret
`postgres-erp-password` in the vault named by `AZURE_KEY_VAULT_URL`.

- Identity: `DefaultAzureCredential` - the function app's managed identity in Azure (a
  user-assigned one when `AZURE_CLIENT_ID` is set), `az login` on a laptop. Nothing else is
  configured: no client secret, no account key.
- Each secret is fetched at most once per provider instance; `build_resolver` makes one per job,
  so a job reads each of its secrets once and keeps them in memory only. A missing secret
  (404) is remembered as missing, so the resolver's message names the vault and the secret to
  create.
- Throttling (429, honouring Retry-After) and transient failures (408, 5xx, connection errors)
  are retried by azure-core's RetryPolicy with exponential backoff, bounded in total time;
  what still fails is a `RetriableJobError`. A 403 is never retried: it becomes a `JobError`
  naming the vault and the role the identity needs ("Key Vault Secrets User").
- Messages name vaults and secret names, never values.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from types import SimpleNamespace
from typing import Any

from ingest import identity
from ingest.errors import JobError, RequestError, RetriableJobError
from ingest.settings import managed_identity_client_id

#: role that lets an identity read secret values (and list secret names)
READ_ROLE = "Key Vault Secrets User"
#: role that lets an identity create and update secrets (`secrets migrate`)
WRITE_ROLE = "Key Vault Secrets Officer"

#: Key Vault secret names: 1-127 letters, digits and dashes
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")

# Retry budget for one Key Vault call (azure-core RetryPolicy settings). Key Vault throttles per
# vault (e.g. 4,000 GETs per 10 s); a throttled call waits what Retry-After says (capped), else
# 0.8 s, 1.6 s, 3.2 s ... (capped); the whole call gives up after RETRY_TIMEOUT_S.
RETRY_TOTAL = 6
RETRY_BACKOFF_FACTOR = 0.8
RETRY_BACKOFF_MAX_S = 30
RETRY_AFTER_MAX_S = 30
RETRY_TIMEOUT_S = 120


def vault_secret_name(source_name: str, key: str) -> str:
    """Key Vault names allow only letters, digits and dashes: postgres_erp/password ->
    postgres-erp-password."""
    return f"{source_name}-{key}".replace("_", "-").lower()


class VaultAccessError(JobError):
    """The vault cannot be used at all from here (authentication, firewall): every secret of
    it would fail the same way."""


class VaultUnreachableError(RetriableJobError):
    """No answer from the vault (DNS, connection, TLS) after retries."""


def check_vault_url(vault_url: str) -> str:
    """The vault URL without a trailing slash; raises RequestError when it cannot be one."""
    url = (vault_url or "").strip().rstrip("/")
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        raise RequestError(
            f"Key Vault URL {vault_url!r} must look like https://<vault-name>.vault.azure.net "
            "(set AZURE_KEY_VAULT_URL or --vault-url)"
        )
    return url


def _identity_description() -> str:
    client_id = managed_identity_client_id()
    if client_id:
        return f"the user-assigned managed identity with client id {client_id}"
    return (
        "the function app's managed identity (locally: the account you signed in with `az login`)"
    )


@cache
def _azure() -> SimpleNamespace:
    """The Azure SDK's parts a vault uses: the one lazy import of it here."""
    # the Azure SDK: only when a vault is configured
    import azure.core.exceptions
    import azure.core.pipeline.policies
    import azure.keyvault.secrets

    return SimpleNamespace(
        errors=azure.core.exceptions,
        policies=azure.core.pipeline.policies,
        secrets=azure.keyvault.secrets,
    )


def bounded_retry_policy(**overrides: Any) -> Any:
    """azure-core's RetryPolicy with the budget above; a Retry-After longer than
    RETRY_AFTER_MAX_S is shortened to it, so one call never sleeps for minutes."""

    retry_policy: Any = _azure().policies.RetryPolicy

    class BoundedRetryPolicy(retry_policy):
        def get_retry_after(self, response: Any) -> float | None:
            value = super().get_retry_after(response)
            return None if value is None else min(value, RETRY_AFTER_MAX_S)

    settings: dict[str, Any] = {
        "retry_total": RETRY_TOTAL,
        "retry_backoff_factor": RETRY_BACKOFF_FACTOR,
        "retry_backoff_max": RETRY_BACKOFF_MAX_S,
        "timeout": RETRY_TIMEOUT_S,
    }
    settings.update(overrides)
    return BoundedRetryPolicy(**settings)


#: SecretClients built with the default credential, one per vault URL: jobs of one process share
#: the connection pool and the bearer token (values are still cached per provider, i.e. per job)
_shared_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class KeyVaultSecrets:
    """Secrets of one Key Vault; values are cached for the life of this object.

    `credential` defaults to the process's DefaultAzureCredential. `client` (a ready
    SecretClient) and `client_kwargs` (extra SecretClient options) exist for tests, which
    point the real SDK at a local stand-in; production passes neither.
    """

    def __init__(
        self,
        vault_url: str,
        credential: Any = None,
        client: Any = None,
        **client_kwargs: Any,
    ):
        # Never raise here: build_resolver runs before a job's error handling, so a bad URL
        # is reported by the first lookup (as that job's failure).
        self.vault_url = (vault_url or "").strip().rstrip("/")
        self.name = f"Key Vault {self.vault_url}"
        self._credential = credential
        self._client = client
        self._client_kwargs = client_kwargs
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------
    # SecretProvider protocol

    def get(self, source_name: str, key: str) -> str | None:
        return self.get_by_name(vault_secret_name(source_name, key))

    def where(self, source_name: str, key: str) -> str:
        return f"Key Vault {self.vault_url} secret {vault_secret_name(source_name, key)!r}"

    # ------------------------------------------------------------------------------------------
    # by secret name (also used by `secrets migrate` / `list-missing`)

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    url = check_vault_url(self.vault_url)
                except RequestError as exc:
                    raise JobError(str(exc)) from None
                shared = self._credential is None and not self._client_kwargs
                if shared:
                    with _clients_lock:
                        self._client = _shared_clients.get(url)
                if self._client is None:
                    self._client = self._new_client(url)
                    if shared:
                        with _clients_lock:
                            self._client = _shared_clients.setdefault(url, self._client)
            return self._client

    def _new_client(self, url: str) -> Any:
        kwargs = dict(self._client_kwargs)
        kwargs.setdefault("retry_policy", bounded_retry_policy())
        return _azure().secrets.SecretClient(
            url, self._credential or identity.default_credential(), **kwargs
        )

    def get_by_name(self, name: str) -> str | None:
        """The current value of secret `name`, or None when the vault has no such secret.
        Fetched once; later calls (and misses) come from memory."""
        with self._lock:
            if name in self._cache:
                return self._cache[name]
        if not SECRET_NAME.match(name):
            value = None  # a name Key Vault cannot hold cannot be there
        else:
            value = self._fetch(name)
        with self._lock:
            self._cache[name] = value
        return value

    def _fetch(self, name: str) -> str | None:
        errors = _azure().errors
        client = self.client()
        try:
            return client.get_secret(name).value
        except errors.ResourceNotFoundError:
            return None
        except errors.AzureError as exc:
            raise self.error(exc, f"reading secret {name!r}", READ_ROLE) from None

    def set_secret(self, name: str, value: str, tags: dict[str, str] | None = None) -> None:
        """Create or add a new version of secret `name`."""
        try:
            self.client().set_secret(name, value, tags=tags, content_type="text/plain")
        except _azure().errors.AzureError as exc:
            raise self.error(exc, f"writing secret {name!r}", WRITE_ROLE) from None
        with self._lock:
            self._cache[name] = value

    def list_names(self) -> dict[str, bool]:
        """Every secret name in the vault -> whether it is enabled (one paged list call;
        values are not read)."""
        try:
            return {
                props.name: bool(props.enabled)
                for props in self.client().list_properties_of_secrets()
                if props.name
            }
        except _azure().errors.AzureError as exc:
            raise self.error(exc, "listing secrets", READ_ROLE) from None

    # ------------------------------------------------------------------------------------------
    # errors

    def error(self, exc: BaseException, action: str, role: str) -> JobError:
        """A JobError saying what to do about a failed Key Vault call (never a value)."""
        errors = _azure().errors
        vault = f"Key Vault {self.vault_url}"
        status = getattr(exc, "status_code", None)
        code = ""
        if isinstance(exc, errors.HttpResponseError) and exc.error is not None:
            code = exc.error.code or ""
            inner = getattr(exc.error, "innererror", None) or {}
            if isinstance(inner, dict) and inner.get("code"):
                code = f"{code}/{inner['code']}" if code else str(inner["code"])
        if status == 403:
            if "ForbiddenByFirewall" in code:
                return VaultAccessError(
                    f"{vault} refused {action} (HTTP 403, {code}): the vault's network "
                    "firewall blocks this app; allow its outbound network (VNet integration / "
                    "private endpoint) in the vault's networking settings"
                )
            if "ForbiddenByPolicy" in code or "AccessDenied" in code:
                hint = "an access policy with secret get/list (and set for migrate) permission"
            else:
                hint = f"the {role!r} role on this vault"
            return JobError(
                f"{vault} refused {action} (HTTP 403{', ' + code if code else ''}): "
                f"{_identity_description()} needs {hint}, e.g. az role assignment create "
                f"--role {role!r} --assignee <principal id> --scope <vault resource id>"
            )
        if isinstance(exc, errors.ClientAuthenticationError) or status == 401:
            detail = str(getattr(exc, "message", None) or exc).splitlines()[0][:300]
            return VaultAccessError(
                f"could not authenticate to {vault} ({action}): {detail}. In Azure, enable the "
                "function app's managed identity (set AZURE_CLIENT_ID for a user-assigned one); "
                "locally, run `az login`"
            )
        if status == 429 or (status is not None and (status == 408 or status >= 500)):
            return RetriableJobError(
                f"{vault} is throttling or unavailable (HTTP {status}) {action}, "
                "still failing after retries; try again later"
            )
        if (
            isinstance(exc, errors.ServiceRequestError | errors.ServiceResponseError)
            or status is None
        ):
            return VaultUnreachableError(
                f"could not reach {vault} ({action}): {type(exc).__name__}; check the URL "
                "and the network path to the vault"
            )
        return JobError(f"{vault} failed {action}: HTTP {status} {code}".rstrip())
