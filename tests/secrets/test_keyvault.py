"""Key Vault secrets: the real `SecretClient` against a local HTTPS stand-in of the
Key Vault REST API (tests/keyvault_standin.py), PostgreSQL jobs whose credentials exist only
in that vault, `secrets migrate` / `list-missing`, and the redaction safety net."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import time
import uuid
from pathlib import Path

import pytest

from ingest import identity
from ingest.cli import main
from ingest.errors import JobError, RetriableJobError
from ingest.secrets import keyvault
from ingest.secrets.keyvault import KeyVaultSecrets
from ingest.secrets.resolver import (
    EnvSecrets,
    Redactor,
    Secret,
    SecretResolver,
    build_resolver,
)
from tests.conftest import read_lake_table
from tests.fixtures.sheet import TABLE_JOB, sheet_header
from tests.keyvault_standin import SCOPE, TENANT, FakeCredential, KeyVaultStandIn

COLUMNS = sheet_header(
    *TABLE_JOB,
    "watermark_column",
    "primary_key",
)


@pytest.fixture
def vault():
    with KeyVaultStandIn() as standin:
        yield standin


@pytest.fixture
def credential():
    return FakeCredential()


@pytest.fixture
def use_vault(vault, credential, monkeypatch):
    """AZURE_KEY_VAULT_URL points at the stand-in; every KeyVaultSecrets the code builds
    (build_resolver, the secrets commands) gets the fake credential and the test certificate.
    Production code is unchanged: only its constructor defaults are filled in."""
    kwargs = vault.client_kwargs()

    class StandInKeyVaultSecrets(KeyVaultSecrets):
        def __init__(self, vault_url, credential_=None, client=None, **client_kwargs):
            super().__init__(vault_url, credential, client, **{**kwargs, **client_kwargs})

    monkeypatch.setattr(keyvault, "KeyVaultSecrets", StandInKeyVaultSecrets)
    monkeypatch.setenv("AZURE_KEY_VAULT_URL", vault.url)
    return vault


def provider(vault, credential=None, **kwargs) -> KeyVaultSecrets:
    return KeyVaultSecrets(
        vault.url, credential or FakeCredential(), **{**vault.client_kwargs(), **kwargs}
    )


def put_pg_secrets(vault, pg, source: str, password: str) -> None:
    for key, value in pg.secrets().items():
        vault.put(f"{source.replace('_', '-')}-{key}", str(value))
    vault.put(f"{source.replace('_', '-')}-password", password)


def audit_text(lake_uri: str) -> str:
    folder = Path(lake_uri.removeprefix("file://")) / "metadata"
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return "".join(p.read_text() for p in files)  # the audit, and lease files naming holders


def audit_rows(lake_uri: str) -> dict[str, dict]:
    day = dt.datetime.now(dt.UTC)
    path = Path(lake_uri.removeprefix("file://")) / "metadata" / f"audit_{day:%Y%m%d}.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return {r["job_id"]: r for r in csv.DictReader(handle)}


# ------------------------------------------------------------------------------------------
# Secret and redaction


def test_secret_never_shows_its_value():
    secret = Secret("hunter2-value")
    for text in (
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret:>40}",
        "%s %r" % (secret, secret),  # noqa: UP031 - the % operator is what logging uses
        "{}".format(secret),  # noqa: UP032
        repr({"password": secret}),
    ):
        assert "hunter2" not in text and "***" in text
    with pytest.raises(TypeError):
        json.dumps({"password": secret})
    assert json.dumps({"password": secret}, default=str) == '{"password": "Secret(\'***\')"}'
    assert secret.reveal() == "hunter2-value"


def test_redaction_filter_scrubs_message_args_and_tracebacks():
    from ingest.secrets.redaction import RedactionFilter, register_redactor

    redactor = register_redactor(Redactor())
    value = f"S3ntinel-{uuid.uuid4().hex}"
    redactor.add(value)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("connecting with %s", value)
    logger.warning(f"inline {value}")
    try:
        raise RuntimeError(f"driver said password={value}")
    except RuntimeError:
        logger.exception("failed")
    logger.warning("plain %d%% done", 50)  # untouched records keep formatting
    text = stream.getvalue()
    assert value not in text
    assert text.count("***") == 3
    assert "RuntimeError: driver said password=***" in text
    assert "plain 50% done" in text

    # weak registry: once the run's redactor is gone its values are forgotten
    from ingest.secrets.redaction import active_redactors

    del redactor
    import gc

    gc.collect()
    assert not any(r.redact(value) != value for r in active_redactors())


def test_configure_logging_and_install_redaction_put_the_filter_on_handlers():
    from ingest.runtime.logsetup import configure_logging
    from ingest.secrets.redaction import RedactionFilter, install_redaction

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging(logging.INFO)
        ours = [h for h in root.handlers if getattr(h, "_ingest", False)]
        assert ours and any(isinstance(f, RedactionFilter) for f in ours[0].filters)
        extra = logging.StreamHandler(io.StringIO())
        root.addHandler(extra)
        redactor = Redactor()
        redactor.add("value-from-the-function-app")
        installed = install_redaction(redactor)
        assert installed in extra.filters
        install_redaction()  # idempotent
        assert sum(isinstance(f, RedactionFilter) for f in extra.filters) == 1
        logging.getLogger("test.install").warning("x value-from-the-function-app y")
        assert "value-from-the-function-app" not in extra.stream.getvalue()
        assert "x *** y" in extra.stream.getvalue()
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)


def test_build_resolver_registers_its_redactor(tmp_path):
    from ingest.secrets.redaction import active_redactors

    resolver = build_resolver(tmp_path / "none.toml", env={"SOURCES__X__PASSWORD": "pw-123"})
    assert resolver.redactor in active_redactors()


# ------------------------------------------------------------------------------------------
# the provider against the stand-in


def test_challenge_then_bearer_token_and_values(vault, credential):
    vault.put("postgres-erp-password", "pw-value")
    kv = provider(vault, credential)
    assert kv.get("postgres_erp", "password") == "pw-value"
    first, second = vault.requests[:2]
    assert (first.status, first.authorized) == (401, False)  # challenge
    assert (second.status, second.authorized) == (200, True)
    scopes, kwargs = credential.calls[0]
    assert scopes == (SCOPE,) and kwargs.get("tenant_id") == TENANT


def test_missing_secret_is_none_and_named_by_where(vault):
    kv = provider(vault)
    assert kv.get("postgres_erp", "password") is None
    assert kv.where("postgres_erp", "password") == (
        f"Key Vault {vault.url} secret 'postgres-erp-password'"
    )
    resolver = SecretResolver([EnvSecrets({}), kv])
    with pytest.raises(JobError) as raised:
        resolver.resolve("postgres_erp", ["host"])
    message = str(raised.value)
    assert f"Key Vault {vault.url} secret 'postgres-erp-host'" in message
    assert "SOURCES__POSTGRES_ERP__HOST" in message


def test_each_secret_is_fetched_once_per_provider(vault):
    vault.put("erp-host", "db.example")
    kv = provider(vault)
    for _ in range(3):
        assert kv.get("erp", "host") == "db.example"
        assert kv.get("erp", "password") is None  # misses are remembered too
    assert len(vault.authorized_requests("GET", "erp-host")) == 1
    assert len(vault.authorized_requests("GET", "erp-password")) == 1


def test_environment_overrides_the_vault(vault, tmp_path):
    vault.put("erp-host", "from-vault")
    resolver = SecretResolver([EnvSecrets({"SOURCES__ERP__HOST": "from-env"}), provider(vault)])
    assert resolver.resolve("erp", ["host"])["host"].reveal() == "from-env"
    assert vault.authorized_requests("GET", "erp-host") == []  # the vault was not asked


def test_unresolved_app_service_reference_names_the_setting():
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/erp-password/)"
    env = EnvSecrets({"SOURCES__ERP__PASSWORD": reference})
    with pytest.raises(JobError) as raised:
        env.get("erp", "password")
    message = str(raised.value)
    assert "SOURCES__ERP__PASSWORD" in message and "Key Vault Secrets User" in message
    assert "SecretUri" not in message.split("(SecretUri")[0]  # the value itself is not echoed
    assert "kv.vault.azure.net" not in message


def test_throttling_is_retried_honouring_retry_after(vault):
    vault.put("erp-host", "db.example")
    vault.fail(429, name="erp-host", times=2, retry_after=0.4)
    clock = time.monotonic()
    assert provider(vault).get("erp", "host") == "db.example"
    assert time.monotonic() - clock >= 0.75  # two waits of Retry-After
    statuses = [r.status for r in vault.authorized_requests("GET", "erp-host")]
    assert statuses == [429, 429, 200]


def test_long_retry_after_is_capped(vault, monkeypatch):
    monkeypatch.setattr(keyvault, "RETRY_AFTER_MAX_S", 0.2)
    vault.put("erp-host", "db.example")
    vault.fail(429, name="erp-host", times=1, retry_after=3600)
    clock = time.monotonic()
    assert provider(vault).get("erp", "host") == "db.example"
    assert time.monotonic() - clock < 5


def test_persistent_server_errors_give_a_retriable_job_error(vault):
    vault.fail(503, name="erp-host")
    policy = keyvault.bounded_retry_policy(retry_total=2, retry_backoff_factor=0.01)
    with pytest.raises(RetriableJobError) as raised:
        provider(vault, retry_policy=policy).get("erp", "host")
    assert len(vault.authorized_requests("GET", "erp-host")) == 3
    assert vault.url in str(raised.value) and "503" in str(raised.value)


def test_forbidden_is_not_retried_and_names_the_role(vault, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    vault.fail(403, name="erp-password")
    with pytest.raises(JobError) as raised:
        provider(vault).get("erp", "password")
    error = raised.value
    assert not error.retriable
    assert "'Key Vault Secrets User'" in str(error)
    assert vault.url in str(error) and "'erp-password'" in str(error)
    assert "11111111-2222-3333-4444-555555555555" in str(error)
    assert len(vault.authorized_requests("GET", "erp-password")) == 1


def test_bad_vault_url_fails_the_lookup_not_the_constructor():
    kv = KeyVaultSecrets("http://kv.example")  # plain http: Key Vault needs TLS
    with pytest.raises(JobError, match="https://<vault-name>.vault.azure.net"):
        kv.get("erp", "host")


# ------------------------------------------------------------------------------------------
# end to end: PostgreSQL jobs reading their credentials from the vault only


@pytest.fixture
def vault_sources(pg, use_vault, tmp_path):
    """`vault_pg`: every connection value only in the vault (password a sentinel);
    `lost_pg`: in the configuration but with no secrets anywhere."""
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 25) g")
    pg.execute("CREATE TABLE orders (id int PRIMARY KEY, amount int)")
    pg.execute("INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 12) g")
    sentinel = f"S3ntinel-{uuid.uuid4()}"
    put_pg_secrets(use_vault, pg, "vault_pg", sentinel)
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        f"v1,Y,postgresql,vault_pg,{pg.name},customers,FULL,,id\n"
        f"v2,Y,postgresql,vault_pg,{pg.name},orders,FULL,,id\n"
        f"l1,Y,postgresql,lost_pg,{pg.name},customers,FULL,,id\n",
        encoding="utf-8",
    )
    return config, sentinel


def test_job_loads_with_credentials_only_in_the_vault(vault_sources, use_vault, file_lake):
    from ingest.plan import plan
    from tests.fixtures.jobs import run_task

    config, sentinel = vault_sources
    (task,) = plan(str(config), destination=file_lake, jobs=["v1"]).tasks
    result = run_task(task)
    assert result["status"] == "SUCCESS", result["error"]
    assert result["rows_loaded"] == 25
    assert read_lake_table(file_lake, "vault_pg", "customers").num_rows == 25
    assert use_vault.value("vault-pg-password") == sentinel
    assert len(use_vault.authorized_requests("GET", "vault-pg-password")) == 1


def test_missing_secret_fails_only_that_sources_jobs_and_nothing_leaks(
    vault_sources, use_vault, file_lake, capsys, caplog
):
    config, sentinel = vault_sources
    caplog.set_level(logging.DEBUG)
    code = main(["run", "--config", str(config), "--destination", file_lake])
    out = capsys.readouterr()
    assert code == 1
    rows = audit_rows(file_lake)
    assert rows["v1"]["status"] == "SUCCESS" and rows["v1"]["rows_loaded"] == "25"
    assert rows["v2"]["status"] == "SUCCESS" and rows["v2"]["rows_loaded"] == "12"
    assert rows["l1"]["status"] == "FAILED"
    error = rows["l1"]["error"]
    assert f"Key Vault {use_vault.url} secret 'lost-pg-host'" in error
    assert "SOURCES__LOST_PG__HOST" in error
    # each secret once per job: two vault_pg jobs -> two reads of each vault_pg secret
    for key in ("host", "port", "database", "username", "password"):
        assert len(use_vault.authorized_requests("GET", f"vault-pg-{key}")) == 2, key
    # the sentinel is nowhere
    assert sentinel not in audit_text(file_lake)
    assert sentinel not in out.out + out.err
    assert sentinel not in caplog.text
    assert sentinel not in json.dumps(rows)


def test_run_tasks_results_hold_no_secret(vault_sources, use_vault, file_lake):
    from ingest.plan import plan
    from ingest.settings import Settings
    from tests.fixtures.jobs import run_tasks_json

    config, sentinel = vault_sources
    use_vault.fail(403, name="vault-pg-password")  # the identity lost its role
    the_plan = plan(str(config), destination=file_lake)
    results = {r["job_id"]: r for r in run_tasks_json(the_plan.tasks, Settings.from_env())}
    assert results["v1"]["status"] == "FAILED" and results["v1"]["retriable"] is False
    assert "Key Vault Secrets User" in results["v1"]["error"]
    assert results["l1"]["status"] == "FAILED" and "lost-pg-host" in results["l1"]["error"]
    assert sentinel not in json.dumps(results)


# ------------------------------------------------------------------------------------------
# secrets migrate / list-missing


@pytest.fixture
def secrets_toml(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text(
        "[sources.erp_pg]\n"
        'host = "127.0.0.1"\n'
        "port = 5432\n"
        'database = "test"\n'
        'username = "postgres"\n'
        'password = "Toml-Secret-1"\n'
        "\n"
        "[sources.crm_api.credentials]\n"
        'token = "Tok-Secret-2"\n'
        "\n"
        "[sources.crm_api]\n"
        'base_url = "https://crm.example"\n',
        encoding="utf-8",
    )
    return path


EXPECTED_NAMES = {
    "erp-pg-host",
    "erp-pg-port",
    "erp-pg-database",
    "erp-pg-username",
    "erp-pg-password",
    "crm-api-token",
    "crm-api-base-url",
    "lake-storage-account-name",
}


def test_migrate_dry_run_lists_names_and_writes_nothing(
    use_vault, secrets_toml, capsys, monkeypatch
):
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "lakeacct")
    code = main(["secrets", "migrate", "--secrets-file", str(secrets_toml), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    for name in EXPECTED_NAMES:
        assert name in out
    assert "Toml-Secret-1" not in out and "Tok-Secret-2" not in out and "lakeacct" not in out
    assert use_vault.requests == []  # not even a read


def test_migrate_round_trip_and_overwrite_rules(
    use_vault, secrets_toml, capsys, monkeypatch, pg, file_lake, tmp_path
):
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "lakeacct")
    args = ["secrets", "migrate", "--vault-url", use_vault.url, "--secrets-file", str(secrets_toml)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert set(use_vault.secrets) == EXPECTED_NAMES
    assert use_vault.value("erp-pg-password") == "Toml-Secret-1"
    assert use_vault.value("erp-pg-port") == "5432"
    assert use_vault.value("crm-api-token") == "Tok-Secret-2"
    assert use_vault.value("lake-storage-account-name") == "lakeacct"
    assert "8 created" in out and "Toml-Secret-1" not in out and "Tok-Secret-2" not in out

    # again: nothing changes
    writes = len(use_vault.writes())
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 unchanged" in out and len(use_vault.writes()) == writes

    # someone changed a secret in the vault: left alone unless --overwrite
    use_vault.put("erp-pg-password", "Rotated-In-Vault")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 skipped" in out and "--overwrite" in out
    assert use_vault.value("erp-pg-password") == "Rotated-In-Vault"
    assert main([*args, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "1 updated" in out and "7 unchanged" in out
    assert use_vault.value("erp-pg-password") == "Toml-Secret-1"
    assert "Rotated-In-Vault" not in out

    # a run reads them back from the vault (no secrets file, no environment variables)
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pg.execute("INSERT INTO items SELECT generate_series(1, 7)")
    config = tmp_path / "jobs.csv"
    config.write_text(COLUMNS + f"\nm1,Y,postgresql,erp_pg,{pg.name},items,FULL,,id\n")
    assert main(["run", "--config", str(config), "--destination", file_lake]) == 0
    assert read_lake_table(file_lake, "erp_pg", "items").num_rows == 7
    assert "Toml-Secret-1" not in audit_text(file_lake)


def test_migrate_write_denied_fails_per_name_with_the_officer_role(use_vault, secrets_toml, capsys):
    use_vault.fail(403, method="PUT")
    code = main(["secrets", "migrate", "--secrets-file", str(secrets_toml)])
    out = capsys.readouterr().out
    assert code == 1
    assert "7 failed" in out  # no storage account known here
    assert "Key Vault Secrets Officer" in out
    assert use_vault.secrets == {}


def test_migrate_usage_errors(use_vault, secrets_toml, tmp_path, monkeypatch, capsys):
    assert main(["secrets", "migrate", "--secrets-file", str(tmp_path / "nope.toml")]) == 2
    monkeypatch.delenv("AZURE_KEY_VAULT_URL")
    assert main(["secrets", "migrate", "--secrets-file", str(secrets_toml)]) == 2
    assert "--vault-url" in capsys.readouterr().err
    args = ["secrets", "migrate", "--secrets-file", str(secrets_toml)]
    assert main([*args, "--vault-url", "http://kv.example"]) == 2
    with pytest.raises(SystemExit) as raised:
        main(["secrets", "migrate", "--bogus"])
    assert raised.value.code == 2


def test_list_missing(use_vault, tmp_path, capsys):
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        "j1,Y,postgresql,erp_pg,public,a,FULL,,\n"
        "j2,Y,postgresql,erp_pg,public,b,FULL,,\n"
        "j3,N,postgresql,old_pg,public,c,FULL,,\n"
        "j4,Y,sqlite,files_db,,d,FULL,,\n",
        encoding="utf-8",
    )
    use_vault.put("erp-pg-host", "h")
    use_vault.put("erp-pg-username", "u")
    use_vault.put("erp-pg-database", "d", enabled=False)
    assert main(["secrets", "list-missing", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "erp-pg-database" in out and "disabled" in out
    assert "files-db-path" in out and "j4" in out
    assert "erp-pg-host" not in out and "old-pg" not in out  # present / job disabled
    assert "2 of 4 required secret(s) missing" in out

    assert main(["secrets", "list-missing", "--config", str(config), "--include-optional"]) == 1
    assert "erp-pg-password" in capsys.readouterr().out

    use_vault.put("erp-pg-database", "d")
    use_vault.put("files-db-path", "/x.db")
    assert main(["secrets", "list-missing", "--config", str(config)]) == 0
    assert "all 4 required secret(s)" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# criterion 4: the ADLS destination uses the credential chain, no account key


def test_adls_destination_uses_the_identity_not_an_account_key():
    from adlfs import AzureBlobFileSystem

    from ingest.lake.destination import Destination
    from ingest.settings import CATALOGUE

    dest = Destination.from_url("az://lake", env={"AZURE_STORAGE_ACCOUNT_NAME": "lakeacct"})
    assert dest.connection_string is None
    config = dest.dlt_destination().configuration(None, accept_partial=True)
    adlfs_kwargs = config.credentials.to_adlfs_credentials()
    assert adlfs_kwargs.get("account_key") is None and adlfs_kwargs.get("sas_token") is None
    # what dlt hands adlfs: with no key, adlfs signs in with the process's one
    # DefaultAzureCredential (ingest.identity: its tokens are shared by every job and client)
    shared = identity.default_credential()
    assert type(shared).__name__ == "DefaultAzureCredential"
    fs = AzureBlobFileSystem(**adlfs_kwargs, skip_instance_cache=True)
    assert fs.credential is shared
    # the framework's own lake access (audit, clean-up, leases) and Key Vault use it too
    own = dest.filesystem()
    assert own.credential is shared
    assert dest.container_client().credential is shared
    vault = KeyVaultSecrets("https://kv-one.vault.azure.net").client()
    policies = vault._client._client._pipeline._impl_policies
    (auth,) = [p for p in policies if type(p).__name__ == "ChallengeAuthPolicy"]
    assert auth._credential is shared
    assert own.account_key is None
    # the only setting that carries an account key is dev-only
    scopes = {spec.name: spec.scope for spec in CATALOGUE}
    assert scopes["AZURE_STORAGE_CONNECTION_STRING"] == "local"


def test_commands_in_docs_secrets_md_parse():
    import re
    import shlex

    from ingest.cli import build_parser

    text = (Path(__file__).resolve().parents[2] / "docs" / "SECRETS.md").read_text()
    text = text.replace("\\\n", " ")
    lines = [m.group(1).strip() for m in re.finditer(r"python -m ingest ([^`\n]+)", text)]
    concrete = [line for line in lines if "[" not in line and "..." not in line]
    assert len(concrete) >= 3
    for line in concrete:
        build_parser().parse_args(shlex.split(line))  # SystemExit(2) fails the test


def test_default_clients_are_shared_per_vault_and_keep_verification(monkeypatch):
    monkeypatch.setattr(identity, "default_credential", FakeCredential)
    monkeypatch.setattr(keyvault, "_shared_clients", {})
    url = "https://kv-test.vault.azure.net"
    first, second = KeyVaultSecrets(url + "/"), KeyVaultSecrets(url)
    assert first.client() is second.client()  # one connection pool and token per process
    assert KeyVaultSecrets("https://other.vault.azure.net").client() is not first.client()
    policies = first.client()._client._client._pipeline._impl_policies
    (auth,) = [p for p in policies if type(p).__name__ == "ChallengeAuthPolicy"]
    assert auth._verify_challenge_resource is True  # only tests turn it off
    (retry,) = [p for p in policies if type(p).__name__ == "BoundedRetryPolicy"]
    assert retry.total_retries == keyvault.RETRY_TOTAL


def test_firewall_and_authentication_failures_say_what_to_fix(vault):
    from azure.core.exceptions import ClientAuthenticationError

    vault.fail(403, name="erp-host", code="ForbiddenByFirewall")
    with pytest.raises(keyvault.VaultAccessError, match="firewall"):
        provider(vault).get("erp", "host")

    class NoIdentity:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    with pytest.raises(keyvault.VaultAccessError) as raised:
        provider(vault, NoIdentity()).get("erp", "password")
    assert "could not authenticate" in str(raised.value) and "az login" in str(raised.value)
    assert not raised.value.retriable


def test_migrate_stops_early_when_the_vault_is_unreachable(
    use_vault, secrets_toml, capsys, monkeypatch
):
    import socket

    monkeypatch.setattr(keyvault, "RETRY_BACKOFF_FACTOR", 0.01)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    args = ["secrets", "migrate", "--secrets-file", str(secrets_toml)]
    assert main([*args, "--vault-url", f"https://127.0.0.1:{closed}"]) == 1
    out = capsys.readouterr().out
    assert out.count("could not reach") == 1 and out.count("not tried") == 6
    assert "7 failed" in out
