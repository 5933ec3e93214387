"""Test hook for real `dlt-ingest` processes that read Key Vault (tests/secrets/).

On PYTHONPATH only in tests. When INGEST_TEST_KEYVAULT_CERT is set (the certificate of the
local Key Vault stand-in, tests/keyvault_standin.py), every `KeyVaultSecrets` the process
builds gets what the in-process tests give it: a fake token credential, that certificate as
trusted, and no check that the challenge names vault.azure.net (the stand-in is 127.0.0.1).
Production code is unchanged: only its constructor defaults are filled in.
"""

import os

_CERT = os.environ.get("INGEST_TEST_KEYVAULT_CERT")

if _CERT:
    import time

    from ingest.secrets import keyvault

    class _FakeCredential:
        def get_token(self, *scopes, **kwargs):
            from azure.core.credentials import AccessToken

            return AccessToken(os.environ["INGEST_TEST_KEYVAULT_TOKEN"], int(time.time()) + 3600)

    _original_init = keyvault.KeyVaultSecrets.__init__

    def _init(self, vault_url, credential=None, client=None, **client_kwargs):
        client_kwargs.setdefault("connection_verify", _CERT)
        client_kwargs.setdefault("verify_challenge_resource", False)
        _original_init(self, vault_url, credential or _FakeCredential(), client, **client_kwargs)

    keyvault.KeyVaultSecrets.__init__ = _init
