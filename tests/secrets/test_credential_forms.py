"""Every credential form dlt documents for SQL sources, each in a real `dlt-ingest run` against
the local PostgreSQL (trust auth: any password is accepted, so the password is a sentinel that
must never show), plus wrong forms that fail with a message naming the key and the accepted
forms, and the precedence (environment, then the secrets file, then Key Vault)."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from ingest.secrets.resolver import EnvSecrets, SecretResolver, TomlSecrets
from ingest.sources import get_builder
from tests.cli import clean_env, dlt_ingest
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER, read_lake_table
from tests.fixtures.sheet import TABLE_JOB, sheet_header
from tests.keyvault_standin import TOKEN, KeyVaultStandIn

HOOK = Path(__file__).resolve().parents[1] / "keyvault_hook"
SOURCE = "pg_src"


@pytest.fixture
def sentinel() -> str:
    # '@' and '/' must be percent-encoded in a URL: the redactor knows the decoded value
    return f"S3nt/in@l-{uuid.uuid4().hex}"


def url(password: str, **query: str) -> str:
    from urllib.parse import quote

    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"postgresql://{PG_USER}:{quote(password, safe='')}@{PG_HOST}:{PG_PORT}/{PG_DB}" + (
        f"?{tail}" if tail else ""
    )


@pytest.fixture
def job(pg, tmp_path):
    pg.execute("CREATE TABLE people (id int PRIMARY KEY, name text, born date)")
    pg.execute(
        "INSERT INTO people SELECT g, 'p' || g, date '2000-01-01' + g FROM generate_series(1, 37) g"
    )
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "primary_key",
        )
        + "\n"
        f"c1,Y,postgresql,{SOURCE},{pg.name},people,FULL,id\n",
        encoding="utf-8",
    )
    return config


def run(config: Path, tmp_path: Path, env: dict[str, str]):
    lake = tmp_path / "lake"
    proc = dlt_ingest("run", "--config", str(config), "--destination", lake.as_uri(), env=env)
    return proc, lake


def audit_text(lake: Path) -> str:
    return "".join(p.read_text() for p in (lake / "metadata").glob("audit_*.csv"))


def assert_loaded(proc, lake: Path, pg, sentinel: str) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    landed = read_lake_table(lake.as_uri(), SOURCE, "people")
    source = pg.query("SELECT id, name, born FROM people ORDER BY id")
    assert sorted((r["id"], r["name"], r["born"]) for r in landed.to_pylist()) == source
    assert sentinel not in proc.stdout + proc.stderr + audit_text(lake)


def secrets_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    return {"INGEST_SECRETS_FILE": str(path)}


def flat_toml(password: str) -> str:
    return (
        f'[sources.{SOURCE}]\nhost = "{PG_HOST}"\nport = {PG_PORT}\ndatabase = "{PG_DB}"\n'
        f'username = "{PG_USER}"\npassword = "{password}"\n'
    )


FORMS = {
    "connection string in secrets.toml": lambda tmp, pw: secrets_file(
        tmp, f'[sources.{SOURCE}]\ncredentials = "{url(pw, sslmode="disable")}"\n'
    ),
    "connection string in SOURCES__<NAME>__CREDENTIALS": lambda tmp, pw: {
        "SOURCES__PG_SRC__CREDENTIALS": url(pw)
    },
    "credentials table in secrets.toml": lambda tmp, pw: secrets_file(
        tmp,
        f'[sources.{SOURCE}.credentials]\ndrivername = "postgresql"\nhost = "{PG_HOST}"\n'
        f'port = {PG_PORT}\ndatabase = "{PG_DB}"\nusername = "{PG_USER}"\npassword = "{pw}"\n',
    ),
    "credentials table in the environment": lambda tmp, pw: {
        "SOURCES__PG_SRC__CREDENTIALS__HOST": PG_HOST,
        "SOURCES__PG_SRC__CREDENTIALS__DATABASE": PG_DB,
        "SOURCES__PG_SRC__CREDENTIALS__USERNAME": PG_USER,
        "SOURCES__PG_SRC__CREDENTIALS__PASSWORD": pw,
    },
    "flat keys in secrets.toml": lambda tmp, pw: secrets_file(tmp, flat_toml(pw)),
    "flat keys in the environment": lambda tmp, pw: {
        "SOURCES__PG_SRC__HOST": PG_HOST,
        "SOURCES__PG_SRC__PORT": str(PG_PORT),
        "SOURCES__PG_SRC__DATABASE": PG_DB,
        "SOURCES__PG_SRC__USERNAME": PG_USER,
        "SOURCES__PG_SRC__PASSWORD": pw,
    },
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_run_with_each_credential_form(form, job, pg, tmp_path, sentinel):
    env = clean_env(tmp_path, **FORMS[form](tmp_path, sentinel))
    proc, lake = run(job, tmp_path, env)
    assert_loaded(proc, lake, pg, sentinel)


@pytest.fixture
def vault():
    with KeyVaultStandIn() as standin:
        yield standin


def vault_env(tmp_path: Path, vault: KeyVaultStandIn, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path,
        AZURE_KEY_VAULT_URL=vault.url,
        INGEST_TEST_KEYVAULT_CERT=vault.cert_path,
        INGEST_TEST_KEYVAULT_TOKEN=TOKEN,
        PYTHONPATH=str(HOOK),
        **extra,
    )


def test_a_run_with_the_connection_string_in_key_vault(job, pg, tmp_path, sentinel, vault):
    vault.put("pg-src-credentials", url(sentinel))
    proc, lake = run(job, tmp_path, vault_env(tmp_path, vault))
    assert_loaded(proc, lake, pg, sentinel)
    assert len(vault.authorized_requests("GET", "pg-src-credentials")) == 1


def test_a_run_with_separate_keys_in_key_vault(job, pg, tmp_path, sentinel, vault):
    for key, value in {**pg.secrets(), "password": sentinel}.items():
        vault.put(f"pg-src-{key}", str(value))
    proc, lake = run(job, tmp_path, vault_env(tmp_path, vault))
    assert_loaded(proc, lake, pg, sentinel)


def test_environment_wins_over_the_secrets_file_which_wins_over_key_vault(
    job, pg, tmp_path, sentinel, vault
):
    """A working connection string in the environment, broken ones below it: only the
    environment's is used, and a key the environment lacks comes from the next place."""
    vault.put("pg-src-credentials", "postgresql://nobody@vault-host.invalid:1/none")
    file_env = secrets_file(
        tmp_path,
        f'[sources.{SOURCE}]\ncredentials = "postgresql://nobody@file-host.invalid:1/none"\n'
        'sslmode = "disable"\n',
    )
    env = vault_env(
        tmp_path,
        vault,
        SOURCES__PG_SRC__CREDENTIALS=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}",
        SOURCES__PG_SRC__PASSWORD=sentinel,
        **file_env,
    )
    proc, lake = run(job, tmp_path, env)
    assert_loaded(proc, lake, pg, sentinel)
    assert vault.authorized_requests("GET", "pg-src-credentials") == []  # not needed

    # the same resolution in process: sslmode (not in the environment) came from the file
    resolver = SecretResolver([EnvSecrets(env), TomlSecrets(Path(file_env["INGEST_SECRETS_FILE"]))])
    found = get_builder("postgresql").secrets(resolver, SOURCE)
    assert found["host"].reveal() == PG_HOST and found["password"].reveal() == sentinel
    assert found["sslmode"].reveal() == "disable"


WRONG = {
    "a list": ('credentials = ["postgresql://u:{pw}@h/db"]', "it holds a list"),
    "another database's URL": (
        'credentials = "mysql://root:{pw}@127.0.0.1:3306/db"',
        "its scheme 'mysql://' is not one of a postgresql source",
    ),
    "not a URL": ('credentials = "host={pw} dbname=x"', "it is not a connection string"),
    "an unknown parameter": (
        'credentials = "postgresql://u:{pw}@h/db?sslmod=require"',
        "parameter 'sslmod' is not used for a postgresql source (accepted parameters: sslmode)",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_form_fails_naming_the_key_and_the_accepted_forms(case, job, tmp_path):
    line, reason = WRONG[case]
    sentinel = f"S3ntinel{uuid.uuid4().hex}"  # URL-safe: only the form is wrong
    env = clean_env(
        tmp_path, **secrets_file(tmp_path, f"[sources.{SOURCE}]\n" + line.format(pw=sentinel))
    )
    proc, lake = run(job, tmp_path, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = list(csv.DictReader(audit_text(lake).splitlines()))
    assert row["status"] == "FAILED"
    error = row["error"]
    assert f"[sources.{SOURCE}] credentials" in error  # the key
    assert reason in error
    assert "Accepted forms: (1) a connection string" in error
    assert f"(2) a table [sources.{SOURCE}.credentials]" in error
    assert "SOURCES__PG_SRC__CREDENTIALS" in error
    assert sentinel not in proc.stdout + proc.stderr + audit_text(lake)

    if case == "a list":  # validate says the same (once is enough: the same resolver)
        checked = dlt_ingest("validate", "--config", str(job), "--check-connections", env=env)
        assert checked.returncode == 1
        assert "cannot be used: it holds a list" in checked.stdout
        assert sentinel not in checked.stdout + checked.stderr


def test_nothing_found_names_the_connection_string_forms_too(job, tmp_path):
    proc, lake = run(job, tmp_path, clean_env(tmp_path))
    assert proc.returncode == 1
    (row,) = list(csv.DictReader(audit_text(lake).splitlines()))
    assert "missing connection setting(s) host, database, username" in row["error"]
    assert "SOURCES__PG_SRC__CREDENTIALS" in row["error"]
    assert f"[sources.{SOURCE}] credentials" in row["error"]


def test_migrate_uploads_a_connection_string_as_one_secret(tmp_path, vault):
    env = vault_env(tmp_path, vault)
    env.update(
        secrets_file(tmp_path, f'[sources.{SOURCE}]\ncredentials = "{url("pw-" + "x" * 8)}"\n')
    )
    proc = dlt_ingest("secrets", "migrate", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pg-src-credentials" in proc.stdout and "created" in proc.stdout
    assert vault.value("pg-src-credentials") == url("pw-" + "x" * 8)
    assert "pw-xxxxxxxx" not in proc.stdout + proc.stderr


def test_the_redactor_learns_the_password_parsed_out_of_a_connection_string(tmp_path):
    import logging
    from urllib.parse import quote

    from ingest.secrets.redaction import RedactionFilter
    from ingest.secrets.resolver import build_resolver

    password = f"pa/ss@{uuid.uuid4().hex[:10]}"
    text = f"postgresql://u:{quote(password, safe='')}@db.example:5432/erp"
    resolver = build_resolver(tmp_path / "none.toml", env={"SOURCES__PG_SRC__CREDENTIALS": text})
    found = get_builder("postgresql").secrets(resolver, SOURCE)
    assert found["password"].reveal() == password  # decoded by dlt's parser
    leaky = f"driver said: could not connect with {password!r} via {text}"
    clean = resolver.redactor.redact(leaky)
    assert password not in clean and quote(password, safe="") not in clean
    record = logging.makeLogRecord({"msg": "%s", "args": (leaky,)})
    RedactionFilter().filter(record)
    assert password not in record.getMessage() and "***" in record.getMessage()
