"""Connection secrets: where they come from (environment, secrets file, Key Vault) and how
they never leak (values wrapped in `Secret`, every resolved value scrubbed from text and logs).

    resolver = build_resolver(settings.secrets_file, settings.key_vault_url)
    secrets = resolver.resolve("postgres_erp", required=("host", ...), optional=("password",))
    secrets["password"].reveal()

Modules: `resolver` (providers and the resolver), `keyvault` (the Key Vault provider and its
secret names), `redaction` (`Redactor` and the logging filter).
"""

from ingest.secrets.keyvault import vault_secret_name
from ingest.secrets.redaction import MASK, Redactor, install_redaction
from ingest.secrets.resolver import (
    SENSITIVE_KEYS,
    Secret,
    SecretResolver,
    StaticSecrets,
    build_resolver,
    reveal,
)

__all__ = [
    "MASK",
    "SENSITIVE_KEYS",
    "Redactor",
    "Secret",
    "SecretResolver",
    "StaticSecrets",
    "build_resolver",
    "install_redaction",
    "reveal",
    "vault_secret_name",
]
