"""Where the lake is: a local folder (`file://`) or ADLS Gen2 (`az://`, `abfss://`).

`Destination.from_url` parses and checks the URL once; it then hands out the dlt filesystem
destination for pipelines and an fsspec filesystem for the framework's own reads and writes
(audit CSV, clean-up of incomplete loads). On Azure the lake is reached with the managed
identity (one DefaultAzureCredential per process, `ingest.identity`; AZURE_CLIENT_ID picks a
user-assigned identity); an account key is used only when AZURE_STORAGE_CONNECTION_STRING is
set (Azurite, dev).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from ingest import identity
from ingest.errors import RequestError
from ingest.lake.dlt_destination import lake_filesystem
from ingest.lake.layout import CHUNK_LAYOUT, LAYOUT
from ingest.lake.url import parse_lake_url
from ingest.settings import storage_account_name, storage_connection_string


def _parse_connection_string(value: str) -> dict[str, str]:
    parts = {}
    for item in value.split(";"):
        if "=" in item:
            key, _, val = item.partition("=")
            parts[key.strip().lower()] = val.strip()
    return parts


def _emulator_options(connection_string: str | None) -> dict[str, str]:
    """delta-rs options to reach Azurite (an http:// blob endpoint); {} for real ADLS."""
    endpoint = _parse_connection_string(connection_string or "").get("blobendpoint", "")
    if not endpoint.startswith("http://"):
        return {}
    return {
        "azure_storage_use_emulator": "true",
        "allow_http": "true",
        "azure_storage_endpoint": endpoint.rstrip("/"),
    }


def _identity_credentials(fields: dict[str, Any]) -> Any:
    """dlt's Azure credentials holding the process's credential: adlfs authenticates with it
    (and its cached tokens) instead of building a DefaultAzureCredential per job."""
    # dlt: only when a pipeline is built
    from dlt.common.configuration.specs import AzureCredentials

    credentials = AzureCredentials.from_credential(identity.default_credential())
    for name, value in fields.items():
        setattr(credentials, name, value)
    return credentials


@dataclass(frozen=True)
class Destination:
    #: "file" or "az"
    protocol: str
    #: bucket URL handed to dlt: file:///abs/path or az://container/path
    bucket_url: str
    account_name: str | None = None
    #: Azurite / dev only; never logged (repr hides it)
    connection_string: str | None = None
    #: blob endpoint host outside Azure's public cloud (sovereign clouds, Fabric OneLake)
    account_host: str | None = None

    def __repr__(self) -> str:
        return f"Destination({self.display_url!r})"

    @property
    def display_url(self) -> str:
        return self.bucket_url

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str] | None = None) -> Destination:
        """Parse with `ingest.lake.url.parse_lake_url` (every Azure cloud, Fabric OneLake); the
        account name and the dev connection string are settings (read from `env` when given,
        for callers that must ignore the process's)."""
        lake = parse_lake_url(url, storage_account_name(env))
        if lake.kind == "file":
            return cls("file", lake.bucket_url)
        conn = storage_connection_string(env)
        account = lake.account
        if conn:
            account = _parse_connection_string(conn).get("accountname", account)
        if not account:
            raise RequestError(
                f"destination {url!r}: set AZURE_STORAGE_ACCOUNT_NAME to the lake's storage "
                "account (or use abfss://<container>@<account>.dfs.core.windows.net)"
            )
        return cls("az", lake.bucket_url, account, conn, lake.blob_host)

    # ----------------------------------------------------------------------------------------
    # dlt

    def dlt_destination(
        self, destination_name: str | None = None, file_prefix: str | None = None
    ) -> Any:
        """dlt's filesystem destination writing Parquet in the lake layout; `file_prefix`:
        the data files' ids start with it, staged outside the table's folder (a chunk of a
        split load, `ingest.lake.layout.CHUNK_LAYOUT`)."""
        kwargs: dict[str, Any] = {"bucket_url": self.bucket_url, "layout": LAYOUT}
        if file_prefix:
            kwargs["layout"] = CHUNK_LAYOUT
            kwargs["extra_placeholders"] = {"chunk": file_prefix}
        if self.protocol == "az":
            credentials: dict[str, Any] = {"azure_storage_account_name": self.account_name}
            if self.account_host:
                credentials["azure_account_host"] = self.account_host
            if self.connection_string:
                key = _parse_connection_string(self.connection_string).get("accountkey")
                if key:
                    credentials["azure_storage_account_key"] = key
                kwargs["kwargs"] = {"connection_string": self.connection_string}
                # Delta tables (table_format = delta) are written by delta-rs, not adlfs
                if options := _emulator_options(self.connection_string):
                    kwargs["deltalake_storage_options"] = options
            else:  # the managed identity: the process's one credential (ingest.identity)
                if self.account_host:  # dlt writes Delta tables with delta-rs: same host
                    kwargs["deltalake_storage_options"] = self._delta_host_options()
                credentials = _identity_credentials(credentials)
            kwargs["credentials"] = credentials
        if destination_name:
            kwargs["destination_name"] = destination_name
        return lake_filesystem(**kwargs)

    def _delta_host_options(self) -> dict[str, str]:
        """delta-rs options for a blob host outside the public cloud (ingest.lake.url)."""
        if not self.account_host:
            return {}
        options = {"azure_storage_endpoint": f"https://{self.account_host}"}
        if self.account_host.endswith(".fabric.microsoft.com"):
            options["use_fabric_endpoint"] = "true"
        return options

    def delta_storage_options(self) -> dict[str, str]:
        """delta-rs storage options for this (az://) lake, for the framework's own Delta reads:
        the account key on Azurite/dev, else a token of the managed identity."""
        options: dict[str, str] = {"account_name": self.account_name or ""}
        options.update(self._delta_host_options())
        if self.connection_string:
            key = _parse_connection_string(self.connection_string).get("accountkey")
            if key:
                options["account_key"] = key
            options.update(_emulator_options(self.connection_string))
            return options
        token = identity.default_credential().get_token("https://storage.azure.com/.default")
        options["bearer_token"] = token.token
        return options

    # ----------------------------------------------------------------------------------------
    # fsspec, for our own files

    def filesystem(self) -> Any:
        """An fsspec filesystem for this lake."""
        # fsspec: only when the lake is read or written
        import fsspec

        if self.protocol == "file":
            return fsspec.filesystem("file", auto_mkdir=True)
        # Listings must be fresh: clean-up decisions are made from them, and fsspec would
        # otherwise hand back a cached instance with a cached (stale) directory listing.
        fresh = {"skip_instance_cache": True, "use_listings_cache": False}
        if self.connection_string:
            return fsspec.filesystem("az", connection_string=self.connection_string, **fresh)
        host = {"account_host": self.account_host} if self.account_host else {}
        return fsspec.filesystem(
            "az",
            account_name=self.account_name,
            credential=identity.default_credential(),
            **host,
            **fresh,
        )

    def container_client(self) -> Any:
        """The azure-storage-blob ContainerClient of the lake's container (az:// lakes only):
        for what fsspec does not offer, such as blob leases, conditional (ETag) writes and
        listings without an existence probe. One per Destination, so a job's requests share
        its connections (the client is thread-safe: the lease renews from its own thread)."""
        return self._container_client

    @functools.cached_property
    def _container_client(self) -> Any:
        # the Azure SDK: only for blob-storage lakes
        from azure.storage.blob import ContainerClient

        if self.protocol != "az":
            raise ValueError(f"{self.display_url} is not a blob storage lake")
        container = self.path().split("/", 1)[0]
        if self.connection_string:
            return ContainerClient.from_connection_string(self.connection_string, container)
        host = self.account_host or f"{self.account_name}.blob.core.windows.net"
        return ContainerClient(
            f"https://{host}",
            container,
            credential=identity.default_credential(),
        )

    def blob_name(self, *parts: str) -> str:
        """Name of the blob at `parts` under the lake root, inside the lake's container."""
        return self.path(*parts).split("/", 1)[1]

    @property
    def root(self) -> str:
        """The lake root as every reader and writer names it: the local folder (file://, the
        URL's percent-escapes decoded, as dlt decodes them) or `<container>[/<prefix>]` (az://,
        the blob name prefix taken literally, as dlt and adlfs take it). One path for dlt's
        files, the leases, the audit, the views and the clean-up, whatever characters the lake
        path holds (spaces, %, #, +, unicode)."""
        if self.protocol == "file":
            return unquote(urlparse(self.bucket_url).path).rstrip("/")
        return self.bucket_url[len("az://") :].rstrip("/")

    def path(self, *parts: str) -> str:
        """Path of `parts` under the lake root, as the fsspec filesystem expects it."""
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def ensure_exists(self) -> None:
        """Create the local root folder or check the container exists."""
        fs = self.filesystem()
        if self.protocol == "file":
            fs.makedirs(self.path(), exist_ok=True)
            return
        container = self.path().split("/", 1)[0]
        if not fs.exists(container):
            raise RequestError(
                f"container {container!r} does not exist in storage account "
                f"{self.account_name!r}; create it (infra/main.bicep does) or fix "
                "INGEST_DESTINATION"
            )
