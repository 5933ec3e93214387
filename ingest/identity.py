"""The process's Azure identity: one credential, shared by everything that reaches Azure.

The lake (our fsspec filesystem, blob leases and conditional writes, dlt's filesystem
destination), Delta reads and Key Vault all authenticate with the same
`DefaultAzureCredential`: the function app's managed identity (a user-assigned one when
`AZURE_CLIENT_ID` is set), `az login` on a laptop. A credential caches its tokens, so a warm
worker fetches a storage token and a vault token once per hour, not once per table and client.
Nothing is created on a machine that never reaches Azure (Azurite uses its connection string).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_credential: list[Any] = []


def default_credential() -> Any:
    """The process's DefaultAzureCredential, created on first use."""
    with _lock:
        if not _credential:
            # the Azure SDK: only when something authenticates with the identity
            from azure.identity import DefaultAzureCredential

            _credential.append(DefaultAzureCredential())
        return _credential[0]
