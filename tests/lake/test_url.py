"""Lake URLs for every Azure cloud and Fabric OneLake: one parser, errors instead of guesses,
and what the parsed host does to the clients (dlt, adlfs, delta-rs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import RequestError
from ingest.lake.destination import Destination
from ingest.lake.url import LakeUrl, parse_lake_url

WS = "0f6e8a1c-6b1f-4c55-9b0e-2f3a4d5e6f70"

# url -> (container, account, cloud, blob_host, path inside the container)
AZURE_CASES = {
    "abfss://raw-data@stlake01.dfs.core.windows.net": (
        "raw-data",
        "stlake01",
        "AzureCloud",
        None,
        "",
    ),
    "abfss://raw-data@stlake01.dfs.core.windows.net/prod/erp/": (
        "raw-data",
        "stlake01",
        "AzureCloud",
        None,
        "prod/erp",
    ),
    "abfs://raw-data@stlake01.blob.core.windows.net/x": (
        "raw-data",
        "stlake01",
        "AzureCloud",
        None,
        "x",
    ),
    "ABFSS://raw-data@STLAKE01.DFS.CORE.WINDOWS.NET/Mixed/Case": (
        "raw-data",
        "stlake01",
        "AzureCloud",
        None,
        "Mixed/Case",
    ),
    "abfss://raw-data@stlake01.dfs.core.chinacloudapi.cn/a": (
        "raw-data",
        "stlake01",
        "AzureChinaCloud",
        "stlake01.blob.core.chinacloudapi.cn",
        "a",
    ),
    "abfss://raw-data@stlake01.dfs.core.usgovcloudapi.net": (
        "raw-data",
        "stlake01",
        "AzureUSGovernment",
        "stlake01.blob.core.usgovcloudapi.net",
        "",
    ),
    "https://stlake01.dfs.core.windows.net/raw-data/prod": (
        "raw-data",
        "stlake01",
        "AzureCloud",
        None,
        "prod",
    ),
    "https://stlake01.blob.core.usgovcloudapi.net/raw-data": (
        "raw-data",
        "stlake01",
        "AzureUSGovernment",
        "stlake01.blob.core.usgovcloudapi.net",
        "",
    ),
    # Fabric OneLake: the workspace plays the container, the account is "onelake"
    "abfss://Sales@onelake.dfs.fabric.microsoft.com/erp.Lakehouse/Files/raw": (
        "Sales",
        "onelake",
        "Fabric",
        "onelake.blob.fabric.microsoft.com",
        "erp.Lakehouse/Files/raw",
    ),
    f"abfss://{WS}@onelake.dfs.fabric.microsoft.com/{WS}/Files": (
        WS,
        "onelake",
        "Fabric",
        "onelake.blob.fabric.microsoft.com",
        f"{WS}/Files",
    ),
    "abfss://Sales@westus-onelake.dfs.fabric.microsoft.com/erp.Lakehouse/Files": (
        "Sales",
        "onelake",
        "Fabric",
        "westus-onelake.blob.fabric.microsoft.com",
        "erp.Lakehouse/Files",
    ),
    "https://onelake.dfs.fabric.microsoft.com/Sales%20EU/erp.Lakehouse/Files": (
        "Sales EU",
        "onelake",
        "Fabric",
        "onelake.blob.fabric.microsoft.com",
        "erp.Lakehouse/Files",
    ),
}


@pytest.mark.parametrize("url", sorted(AZURE_CASES))
def test_azure_urls_are_placed(url: str) -> None:
    container, account, cloud, blob_host, path = AZURE_CASES[url]
    lake = parse_lake_url(url)
    assert lake == LakeUrl("azure", path, container, account, cloud, blob_host)
    assert lake.bucket_url == f"az://{container}" + (f"/{path}" if path else "")


def test_onelake_is_not_read_as_a_storage_account_named_onelake() -> None:
    """The issue's example: before, `onelake` was taken for an account in the public cloud."""
    dest = Destination.from_url("abfss://ws@onelake.dfs.fabric.microsoft.com/lh.Lakehouse/Files")
    assert dest.account_host == "onelake.blob.fabric.microsoft.com"
    public = Destination.from_url("abfss://raw-data@stlake01.dfs.core.windows.net")
    assert public.account_host is None


def test_az_url_takes_the_account_from_the_setting() -> None:
    lake = parse_lake_url("az://raw-data/prod", default_account="StLake01")
    assert lake == LakeUrl("azure", "prod", "raw-data", "stlake01", "AzureCloud", None)
    assert parse_lake_url("az://raw-data").account is None  # the caller decides
    with pytest.raises(RequestError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        Destination.from_url("az://raw-data", env={})


def test_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_lake_url("file://./lake") == LakeUrl("file", str(tmp_path / "lake"))
    assert parse_lake_url("lake").path == str(tmp_path / "lake")
    assert parse_lake_url(f"file://{tmp_path}/a%20b").path == str(tmp_path / "a b")
    assert parse_lake_url(str(tmp_path)).bucket_url == tmp_path.as_uri()


BAD = {
    "": "empty",
    "file://": "no path",
    "s3://bucket/x": "unsupported scheme 's3'",
    "gs://bucket": "unsupported scheme",
    "abfss://stlake01.dfs.core.windows.net/x": "expected <container>@<host>",
    "abfss://raw-data@stlake01.dfs.core.cloudapi.de": "not the storage suffix of a known Azure",
    "abfss://raw-data@stlake01.dfs.example.com": "not the storage suffix of a known Azure",
    "abfss://raw-data@stlake01.file.core.windows.net": "is not an Azure Storage or OneLake",
    "abfss://raw-data@localhost": "is not an Azure Storage or OneLake",
    "abfss://raw-data@127.0.0.1:10000": "has a port or is an address",
    "abfss://raw-data@st_lake.dfs.core.windows.net": "storage account 'st_lake'",
    "abfss://raw-data@ab.dfs.core.windows.net": "storage account 'ab'",
    "abfss://Raw_Data@stlake01.dfs.core.windows.net": "container 'Raw_Data'",
    "abfss://raw--data@stlake01.dfs.core.windows.net": "container 'raw--data'",
    "abfss://raw-data@stlake01.privatelink.dfs.core.windows.net": "use the account's own name",
    "abfss://ws@onelake.dfs.fabric.microsoft.com": "names the item after the workspace",
    "abfss://ws@onelake.dfs.fabric.microsoft.com/Files/raw": "names the item after the workspace",
    "https://stlake01.dfs.core.windows.net/": "needs the container",
    "https://stlake01.dfs.core.windows.net/raw-data?sv=2024&sig=x": "query strings",
    "az://Bad_Container": "container 'Bad_Container'",
}


@pytest.mark.parametrize("url", sorted(BAD))
def test_what_cannot_be_placed_is_an_error_naming_the_url(url: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_lake_url(url, default_account="stlake01")
    message = str(caught.value)
    assert f"destination {url!r}" in message
    assert BAD[url] in message
    assert "accepted forms" in message


def test_clients_get_the_sovereign_or_onelake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt's credentials, adlfs and delta-rs receive the parsed blob host (no network)."""
    from ingest.lake import delta

    china = Destination.from_url("abfss://raw-data@stlake01.dfs.core.chinacloudapi.cn/p", env={})
    assert (china.protocol, china.bucket_url, china.account_name) == (
        "az",
        "az://raw-data/p",
        "stlake01",
    )
    credentials = china.dlt_destination().config_params["credentials"]
    assert credentials.azure_account_host == "stlake01.blob.core.chinacloudapi.cn"
    fs = china.filesystem()
    assert fs.account_url == "https://stlake01.blob.core.chinacloudapi.cn"
    # the blob SDK client (leases, conditional audit writes) goes to the same host
    assert china.container_client().url == "https://stlake01.blob.core.chinacloudapi.cn/raw-data"

    class Token:
        token = "t"  # noqa: S105 - a stand-in credential's token, not a secret

    class Credential:
        def get_token(self, *scopes: str) -> Token:
            return Token()

    monkeypatch.setattr("ingest.identity.default_credential", Credential)
    onelake = Destination.from_url("abfss://ws@onelake.dfs.fabric.microsoft.com/lh.Lakehouse/F")
    uri, options = delta.table_uri(onelake, "erp", "orders")
    assert uri == "az://ws/lh.Lakehouse/F/erp/orders"
    assert options["azure_storage_endpoint"] == "https://onelake.blob.fabric.microsoft.com"
    assert options["use_fabric_endpoint"] == "true"
    assert options["account_name"] == "onelake"
    public = Destination.from_url("abfss://raw-data@stlake01.dfs.core.windows.net", env={})
    assert public.dlt_destination().config_params["credentials"].azure_account_host is None
    assert "azure_storage_endpoint" not in delta.table_uri(public, "erp", "orders")[1]
    assert public.container_client().url == "https://stlake01.blob.core.windows.net/raw-data"
    assert onelake.container_client().url == "https://onelake.blob.fabric.microsoft.com/ws"
