"""`secrets migrate` and `secrets list-missing`: move local secrets into Key Vault, and check
that the vault holds what the configured jobs need. Values are never printed.

Exit codes: 0 done, 1 some secret failed (migrate) or is missing (list-missing), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ingest.commands.output import show_table
from ingest.errors import JobError, RequestError
from ingest.settings import Settings

log = logging.getLogger(__name__)

#: Key Vault secret holding the lake's storage account name (a name, not a key: the lake is
#: reached with the managed identity). Uploaded by `migrate` when the account is known.
STORAGE_ACCOUNT_SECRET = "lake-storage-account-name"  # noqa: S105 - a name, not a value
#: dlt's place for it in secrets.toml
_DLT_ACCOUNT_KEYS = ("destination", "filesystem", "credentials")

CREATED, UPDATED, UNCHANGED, SKIPPED, FAILED = (
    "created",
    "updated",
    "unchanged",
    "skipped",
    "failed",
)


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.configuration import load_config
    from ingest.lake.destination import Destination
    from ingest.secrets import keyvault
    from ingest.secrets.keyvault import (
        SECRET_NAME,
        VaultAccessError,
        VaultUnreachableError,
        vault_secret_name,
    )
    from ingest.sources import get_builder

    return SimpleNamespace(
        Destination=Destination,
        SECRET_NAME=SECRET_NAME,
        VaultAccessError=VaultAccessError,
        VaultUnreachableError=VaultUnreachableError,
        get_builder=get_builder,
        keyvault=keyvault,
        load_config=load_config,
        vault_secret_name=vault_secret_name,
    )


def register(subparsers: Any) -> None:
    secrets = subparsers.add_parser(
        "secrets",
        help="Key Vault secrets: migrate the local secrets file, list missing ones",
        description="Connection secrets in Azure Key Vault (names: <source-name>-<key>, "
        "underscores become dashes; see docs/SECRETS.md). Values are never printed.",
    )
    actions = secrets.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)

    migrate = actions.add_parser(
        "migrate",
        help="upload every [sources.*] key of the secrets file to Key Vault",
        description="Upload every [sources.<name>] key of the secrets file (and the lake's "
        f"storage account name, as {STORAGE_ACCOUNT_SECRET}) to Key Vault as "
        "<source-name>-<key>. Secrets that exist with a different value are left alone "
        "unless --overwrite. Needs the 'Key Vault Secrets Officer' role. Exit 0 when nothing "
        "failed, 1 when some secret failed, 2 on bad arguments.",
    )
    migrate.add_argument(
        "--vault-url", help="https://<vault>.vault.azure.net (default: AZURE_KEY_VAULT_URL)"
    )
    migrate.add_argument(
        "--secrets-file",
        help="dlt secrets file (default: INGEST_SECRETS_FILE or .dlt/secrets.toml)",
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="list the secret names that would be uploaded; contact no vault, write nothing",
    )
    migrate.add_argument(
        "--overwrite",
        action="store_true",
        help="replace secrets whose value differs (a new version; the old one is kept)",
    )
    migrate.set_defaults(func=cmd_migrate)

    missing = actions.add_parser(
        "list-missing",
        help="list the secrets the enabled jobs need that the vault lacks",
        description="For every enabled job of the configuration, the connection keys its "
        "source type requires, as Key Vault secret names; prints those the vault lacks (or "
        "has disabled). Exit 0 when none is missing, 1 otherwise, 2 on bad arguments.",
    )
    missing.add_argument(
        "--config",
        help="job configuration .xlsx or .csv (default: INGEST_CONFIG_PATH or "
        "config/ingestion_config.xlsx)",
    )
    missing.add_argument("--vault-url", help="default: AZURE_KEY_VAULT_URL")
    missing.add_argument(
        "--include-optional",
        action="store_true",
        help="also list optional keys (password, port, ...) the vault lacks; they do not "
        "change the exit code",
    )
    missing.set_defaults(func=cmd_list_missing)


def _vault(args: argparse.Namespace, settings: Settings) -> Any:
    engine = _engine()
    url = args.vault_url or settings.key_vault_url
    if not url:
        raise RequestError(
            "give --vault-url https://<vault>.vault.azure.net or set AZURE_KEY_VAULT_URL"
        )
    return engine.keyvault.KeyVaultSecrets(engine.keyvault.check_vault_url(url))


# ------------------------------------------------------------------------------------------
# migrate


@dataclass
class Item:
    """One secret to upload. `value` stays in memory; nothing prints it."""

    name: str
    origin: str  # "[sources.x] key" - where it came from, for the summary
    value: str | None
    status: str = ""
    note: str = ""


def _text(value: Any) -> str | None:
    """The secret text of a TOML value (as TomlSecrets reads it), None for tables/arrays."""
    if isinstance(value, dict | list):
        return None
    return str(value)


def _storage_account(data: Mapping[str, Any], settings: Settings) -> tuple[str, str] | None:
    """(account name, where it came from) for the lake, when known."""
    name = settings.storage_account_name
    if name:
        return name, "AZURE_STORAGE_ACCOUNT_NAME"
    section: Any = data
    for key in _DLT_ACCOUNT_KEYS:
        section = section.get(key) if isinstance(section, Mapping) else None
    if isinstance(section, Mapping) and section.get("azure_storage_account_name"):
        return str(section["azure_storage_account_name"]), "[destination.filesystem.credentials]"
    if settings.destination.lower().startswith(("abfs://", "abfss://")):
        engine = _engine()
        try:
            account = engine.Destination.from_url(settings.destination, env={}).account_name
        except RequestError:
            return None
        if account:
            return account, "INGEST_DESTINATION"
    return None


def plan_migration(secrets_file: Path, settings: Settings) -> list[Item]:
    """Every secret `migrate` would upload, in file order, with problems already marked."""
    engine = _engine()
    if not secrets_file.exists():
        raise RequestError(f"secrets file {secrets_file} not found (give --secrets-file)")
    try:
        with secrets_file.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise RequestError(f"secrets file {secrets_file} is not valid TOML: {exc}") from None
    items: list[Item] = []
    for source, section in (data.get("sources") or {}).items():
        if not isinstance(section, Mapping):
            continue
        values = {k: v for k, v in section.items() if k != "credentials"}
        nested = section.get("credentials")
        if isinstance(nested, Mapping):  # dlt's [sources.<name>.credentials]
            values = {**dict(nested), **values}
        elif nested is not None:  # a connection string: secret <name>-credentials
            values = {"credentials": nested, **values}
        for key, raw in values.items():
            name = engine.vault_secret_name(source, key)
            item = Item(name, f"[sources.{source}] {key}", _text(raw))
            if item.value is None:
                item.status, item.note = SKIPPED, "not a single value (table or array)"
            elif not engine.SECRET_NAME.match(name):
                item.status = SKIPPED
                item.note = "name not allowed in Key Vault (letters, digits, dashes; 127 max)"
            elif item.value == "":
                item.status, item.note = SKIPPED, "empty value"
            items.append(item)
    account = _storage_account(data, settings)
    if account:
        items.append(Item(STORAGE_ACCOUNT_SECRET, account[1], account[0]))
    seen: dict[str, Item] = {}
    for item in items:
        first = seen.setdefault(item.name, item)
        if first is not item and not item.status:
            item.status = FAILED
            item.note = f"same secret name as {first.origin}; rename one of the sources"
    return items


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    secrets_file = Path(args.secrets_file) if args.secrets_file else settings.secrets_file
    items = plan_migration(secrets_file, settings)
    vault = _vault(args, settings)
    if not items:
        sys.stdout.write(f"{secrets_file}: no [sources.*] keys, nothing to upload\n")
        return 0
    if args.dry_run:
        rows = [(i.name, i.origin, i.status or "would upload", i.note) for i in items]
        show_table(("secret", "from", "action", "note"), rows, sys.stdout)
        count = sum(1 for i in items if not i.status)
        sys.stdout.write(
            f"\ndry run: {count} secret(s) would be uploaded to {vault.vault_url}; "
            "nothing was written\n"
        )
        return 1 if any(i.status == FAILED for i in items) else 0
    engine = _engine()
    stop: str | None = None  # the vault is unusable: do not try (and wait for) every name
    for item in items:
        if item.status:
            continue
        if stop:
            item.status, item.note = FAILED, f"not tried: {stop}"
            continue
        try:
            _upload(vault, item, overwrite=args.overwrite)
        except (engine.VaultAccessError, engine.VaultUnreachableError) as exc:
            item.status, item.note = FAILED, str(exc)
            stop = "the vault could not be used (see the first failure)"
        except JobError as exc:
            item.status, item.note = FAILED, str(exc)
    rows = [(i.name, i.origin, i.status, i.note) for i in items]
    show_table(("secret", "from", "status", "note"), rows, sys.stdout)
    counts = {
        s: sum(1 for i in items if i.status == s)
        for s in (CREATED, UPDATED, UNCHANGED, SKIPPED, FAILED)
    }
    sys.stdout.write(
        f"\n{vault.vault_url}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n"
    )
    return 1 if counts[FAILED] else 0


def _upload(vault: Any, item: Item, *, overwrite: bool) -> None:
    assert item.value is not None
    existing = vault.get_by_name(item.name)
    tags = {"managed-by": "ingest secrets migrate", "origin": item.origin[:250]}
    if existing is None:
        vault.set_secret(item.name, item.value, tags=tags)
        item.status = CREATED
    elif existing == item.value:
        item.status = UNCHANGED
    elif overwrite:
        vault.set_secret(item.name, item.value, tags=tags)
        item.status, item.note = UPDATED, "new version; the previous one is kept"
    else:
        item.status = SKIPPED
        item.note = "exists in the vault with a different value; --overwrite replaces it"


# ------------------------------------------------------------------------------------------
# list-missing


def cmd_list_missing(args: argparse.Namespace) -> int:
    engine = _engine()
    settings = Settings.from_env()
    config = engine.load_config(args.config or settings.config_path)
    vault = _vault(args, settings)
    needed: dict[str, dict[str, Any]] = {}  # secret name -> source, key, job ids
    problems: list[str] = []
    for job in config.enabled_jobs:
        try:
            builder = engine.get_builder(job.source_type)
        except Exception as exc:  # an unknown or not yet installed source type
            problems.append(f"job {job.job_id}: cannot tell which keys it needs: {exc}")
            continue
        keys = [(k, True) for k in builder.required_keys]
        if args.include_optional:
            keys += [(k, False) for k in builder.optional_keys]
        for key, required in keys:
            name = engine.vault_secret_name(job.source_name, key)
            entry = needed.setdefault(
                name, {"source": job.source_name, "key": key, "jobs": [], "required": required}
            )
            entry["jobs"].append(job.job_id)
    try:
        present = vault.list_names()
    except JobError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    rows = []
    for name, entry in sorted(needed.items()):
        if name in present and present[name]:
            continue
        whole = engine.vault_secret_name(entry["source"], "credentials")
        if present.get(whole):  # a connection string holds the source's keys
            continue
        state = "disabled" if name in present else "missing"
        if not entry["required"]:
            state += " (optional)"
        jobs = ", ".join(entry["jobs"][:5]) + (" ..." if len(entry["jobs"]) > 5 else "")
        rows.append((name, entry["source"], entry["key"], state, jobs))
    for problem in problems:
        log.warning("%s", problem)
    missing = [r for r in rows if "optional" not in r[3]]
    total = sum(1 for e in needed.values() if e["required"])
    if rows:
        show_table(("secret", "source", "key", "state", "jobs"), rows, sys.stdout)
    if missing:
        sys.stdout.write(
            f"\n{len(missing)} of {total} required secret(s) missing in {vault.vault_url}; "
            "create them (az keyvault secret set --vault-name <vault> --name <secret> "
            "--value ...) or run `python -m ingest secrets migrate`\n"
        )
        return 1
    sys.stdout.write(
        f"\nall {total} required secret(s) of {len(config.enabled_jobs)} enabled job(s) "
        f"are in {vault.vault_url}\n"
    )
    return 1 if problems else 0
