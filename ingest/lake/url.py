"""Lake URLs: the one place that decides where a destination URL points.

Accepted (anything else is an error that names the URL and the accepted forms, never a
guess):

- a local path or `file://` URL;
- `az://<container>[/path]` (also `abfs://`): the account comes from AZURE_STORAGE_ACCOUNT_NAME,
  in Azure's public cloud;
- `abfss://<container>@<account>.<dfs|blob>.<storage suffix>[/path]` (also `abfs://`) and
  `https://<account>.<dfs|blob>.<storage suffix>/<container>[/path]`, for each Azure cloud:
  `core.windows.net` (public), `core.chinacloudapi.cn` (21Vianet), `core.usgovcloudapi.net`
  (US Government);
- Microsoft Fabric OneLake: `abfss://<workspace>@onelake.dfs.fabric.microsoft.com/<item>.<ItemType>/...`
  (also `onelake.blob...`, regional `<region>-onelake...`, and the `https://` form), where the
  workspace (name or id) plays the container and the account is `onelake`.

The SDKs (adlfs, delta-rs) speak the blob API, so a non-default host is handed over as
`blob_host` (`<account>.blob.<suffix>`, `onelake.blob.fabric.microsoft.com`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ingest.errors import RequestError

#: storage DNS suffix -> Azure cloud (az cloud list: suffixes.storageEndpoint)
STORAGE_SUFFIXES = {
    "core.windows.net": "AzureCloud",
    "core.chinacloudapi.cn": "AzureChinaCloud",
    "core.usgovcloudapi.net": "AzureUSGovernment",
}
PUBLIC_SUFFIX = "core.windows.net"
FABRIC = "Fabric"
ONELAKE_ACCOUNT = "onelake"

_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_STORAGE_HOST = re.compile(r"(?P<account>[^.]+)\.(?P<service>dfs|blob)\.(?P<suffix>.+)")
_ONELAKE_HOST = re.compile(
    r"(?P<region>[a-z0-9]+-)?onelake\.(?P<service>dfs|blob)\.fabric\.microsoft\.com"
)
#: a OneLake item: `<name>.<ItemType>` (e.g. sales.Lakehouse) or the item's id
_ONELAKE_ITEM = re.compile(
    r"[^/]+\.[A-Za-z]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_WORKSPACE = re.compile(r"[^@/\\]{1,256}")

FORMS = (
    "file://PATH (or a local path), az://<container>[/path] with AZURE_STORAGE_ACCOUNT_NAME, "
    "abfss://<container>@<account>.dfs.core.windows.net[/path] (or .core.chinacloudapi.cn, "
    ".core.usgovcloudapi.net), abfss://<workspace>@onelake.dfs.fabric.microsoft.com/"
    "<item>.Lakehouse/Files[/path]"
)


@dataclass(frozen=True)
class LakeUrl:
    """Where a lake URL points. `kind` is "file" (then only `path` is set, absolute) or
    "azure"."""

    kind: str
    path: str
    container: str | None = None
    account: str | None = None
    #: "AzureCloud", "AzureChinaCloud", "AzureUSGovernment" or "Fabric"
    cloud: str | None = None
    #: blob endpoint host when it is not `<account>.blob.core.windows.net`, else None
    blob_host: str | None = None

    @property
    def bucket_url(self) -> str:
        """What dlt and fsspec are given: file:///abs/path or az://container[/path]."""
        if self.kind == "file":
            return Path(self.path).as_uri()
        return f"az://{self.container}" + (f"/{self.path}" if self.path else "")


def _fail(url: str, why: str) -> RequestError:
    return RequestError(f"destination {url!r}: {why}; accepted forms: {FORMS}")


def parse_lake_url(url: str, default_account: str | None = None) -> LakeUrl:
    """Parse a destination URL (see the module docstring). `default_account` is the storage
    account of `az://` URLs (AZURE_STORAGE_ACCOUNT_NAME); it may be None, for the caller to
    fill in (e.g. from a connection string) or refuse."""
    text = url.strip()
    if not text:
        raise _fail(url, "empty")
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in ("", "file") or re.fullmatch(r"[A-Za-z]", scheme):  # C:\... on Windows
        if scheme == "file":  # a URL: percent-escapes are decoded (file:///My%20Lake)
            raw = unquote(text[len("file://") :])
        else:  # a path: taken literally (My Lake #1 %41 +x)
            raw = text
        if not raw:
            raise _fail(url, "no path")
        return LakeUrl("file", str(Path(raw).expanduser().resolve()))
    netloc_and_path = text[len(scheme) + 3 :]
    netloc, _, literal_path = netloc_and_path.partition("/")
    if scheme == "az" or (scheme == "abfs" and "@" not in netloc):
        # fsspec's form: the path is a blob name prefix, taken literally (spaces, %, #, +)
        container = netloc
        _check_container(url, container)
        path = literal_path.strip("/")
        account = default_account.strip().lower() if default_account else None
        if account is not None and not _ACCOUNT.fullmatch(account):
            raise _fail(url, f"storage account {account!r} is not 3-24 lowercase letters/digits")
        return LakeUrl("azure", path, container, account, "AzureCloud" if account else None)
    parsed = urlparse(text)
    if parsed.query or parsed.fragment:
        raise _fail(url, "query strings and fragments are not part of a lake URL")
    # URL forms: the path is percent-encoded (%20 is a space, %23 a #)
    path = parsed.path.strip("/")
    if scheme in ("abfs", "abfss"):
        container, at, host = parsed.netloc.rpartition("@")
        if not at or not container:
            raise _fail(url, "expected <container>@<host>")
        return _azure(url, host, unquote(container), unquote(path))
    if scheme == "https":
        container, _, rest = path.partition("/")
        if not container:
            raise _fail(url, "an https:// lake URL needs the container after the host")
        return _azure(url, parsed.netloc, unquote(container), unquote(rest))
    raise _fail(url, f"unsupported scheme {scheme!r}")


def _check_container(url: str, container: str) -> None:
    if not _CONTAINER.fullmatch(container or ""):
        raise _fail(
            url,
            f"container {container!r} is not a valid name (3-63 lowercase letters, digits "
            "and single dashes)",
        )


def _azure(url: str, host: str, container: str, path: str) -> LakeUrl:
    host = host.lower()
    if host.startswith("[") or ":" in host:
        raise _fail(url, f"host {host!r} has a port or is an address; use the account's DNS name")
    if onelake := _ONELAKE_HOST.fullmatch(host):
        if not _WORKSPACE.fullmatch(container):
            raise _fail(url, f"OneLake workspace {container!r} is not a workspace name or id")
        item = path.split("/", 1)[0]
        if not _ONELAKE_ITEM.fullmatch(item):
            raise _fail(
                url,
                "a OneLake URL names the item after the workspace: "
                "<workspace>@onelake.dfs.fabric.microsoft.com/<item>.Lakehouse/Files[/path]",
            )
        onelake_host = f"{onelake['region'] or ''}onelake.blob.fabric.microsoft.com"
        return LakeUrl("azure", path, container, ONELAKE_ACCOUNT, FABRIC, onelake_host)
    if ".privatelink." in host:
        raise _fail(
            url,
            f"use the account's own name ({host.replace('.privatelink.', '.')}): "
            "private DNS resolves it to the private endpoint",
        )
    match = _STORAGE_HOST.fullmatch(host)
    if not match:
        raise _fail(url, f"host {host!r} is not an Azure Storage or OneLake endpoint")
    account, suffix = match["account"], match["suffix"]
    if suffix not in STORAGE_SUFFIXES:
        raise _fail(
            url,
            f"{suffix!r} is not the storage suffix of a known Azure cloud "
            f"({', '.join(STORAGE_SUFFIXES)})",
        )
    if not _ACCOUNT.fullmatch(account):
        raise _fail(url, f"storage account {account!r} is not 3-24 lowercase letters/digits")
    _check_container(url, container)
    blob_host = None if suffix == PUBLIC_SUFFIX else f"{account}.blob.{suffix}"
    return LakeUrl("azure", path, container, account, STORAGE_SUFFIXES[suffix], blob_host)
