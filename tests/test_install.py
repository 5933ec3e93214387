"""The installed command: `pip install .` gives `dlt-ingest`, which works from any folder; the
demo's hints run as printed; `.dlt/secrets.toml.example` documents every key of every source
type."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from ingest.secrets.resolver import SecretResolver, TomlSecrets
from ingest.sources import REGISTRY, get_builder
from tests.fixtures.sheet import sheet_header

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".dlt" / "secrets.toml.example"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "SOURCES__"))}
    env.update(RUNTIME__DLTHUB_TELEMETRY="false", **extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `pip install .` installs: the wheel built from this checkout (no network: the
    venv's setuptools builds it)."""
    out = tmp_path_factory.mktemp("wheel")
    # from a copy: setuptools builds in the source tree (build/, *.egg-info)
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(
        ROOT / "ingest", source / "ingest", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out]
        + [str(source)],
        capture_output=True,
        text=True,
        check=False,
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("dlt_ingest-*.whl")
    return built


def test_wheel_declares_the_command_and_holds_the_whole_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = archive.read(metadata).decode()
    assert re.search(r"^dlt-ingest = ingest\.cli:main$", text, re.MULTILINE)
    expected = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "ingest").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert expected <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "infra/"))]
    assert 'Requires-Dist: connectorx==0.4.6; extra == "fast"' in requires
    assert 'Requires-Dist: deltalake==1.6.6; extra == "delta"' in requires


def test_installed_wheel_runs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    """The wheel installed on its own (its code, not this checkout's) answers from a folder
    that is not the repository, and its relative defaults say what to pass."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", site]
        + [str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    command = site / "bin" / "dlt-ingest"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(PYTHONPATH=str(site))

    def dlt_ingest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(command), *args], capture_output=True, text=True, cwd=elsewhere, env=env
        )

    helped = dlt_ingest("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: dlt-ingest")
    for sub in ("run", "validate", "plan", "history", "backfill", "catalog", "secrets", "demo"):
        assert sub in helped.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import ingest; print(ingest.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert where.stdout.strip().startswith(str(site)), "the test must run the wheel's code"

    missing = dlt_ingest("validate")
    assert missing.returncode == 2
    assert f"looked in {elsewhere}" in missing.stderr
    assert "pass --config PATH or set INGEST_CONFIG_PATH" in missing.stderr

    history = dlt_ingest("history")  # default lake file://./lake: this folder's ./lake
    assert history.returncode == 0, history.stderr
    assert f"under {(elsewhere / 'lake').as_uri()} " in history.stdout
    assert "--destination URL or INGEST_DESTINATION" in history.stdout

    config = elsewhere / "jobs.csv"
    config.write_text(
        sheet_header("job_id", "enabled", "source_type", "source_name", "table_name", "load_type")
        + "\n"
        "001,Y,sqlite,shop,orders,FULL\n"
    )
    run = dlt_ingest("run", "--config", "jobs.csv", "--json")
    assert run.returncode == 1, run.stderr
    (result,) = json.loads(run.stdout)["results"]
    # the default secrets file is named with its absolute path and the setting that moves it
    assert f"{elsewhere / '.dlt' / 'secrets.toml'} [sources.shop] path" in result["error"]
    assert "INGEST_SECRETS_FILE" in result["error"]


def test_demo_and_its_hints_work_outside_the_repository(tmp_path: Path) -> None:
    """`dlt-ingest demo` in an empty folder, then every command it prints, run as printed
    from another folder: the hints point at the files the demo wrote."""
    command = Path(sys.executable).parent / "dlt-ingest"
    if not command.exists():
        pytest.fail(f"{command} missing: `python3 tasks.py test` installs the project (-e .)")
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    demo = subprocess.run(
        [str(command), "demo"], capture_output=True, text=True, cwd=work, env=clean_env()
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (work / "demo_data" / "secrets.toml").exists() and (work / "demo_lake").is_dir()
    assert not (work / "lake").exists()  # where `run` writes by default: the demo keeps out
    hints = demo.stdout.split("== next:", 1)[1].splitlines()[1:]
    hints = [h.strip() for h in hints if h.strip()]
    assert len(hints) == 5
    assert any(" query " in h for h in hints)
    assert any("--check-connections" in h for h in hints)
    assert all(str(command) in h for h in hints)
    for hint in hints:
        if "INGEST_SECRETS_FILE=" in hint:
            assert f"INGEST_SECRETS_FILE={work / 'demo_data' / 'secrets.toml'}" in hint
        ran = subprocess.run(
            ["bash", "-c", hint], capture_output=True, text=True, cwd=other, env=clean_env()
        )
        assert ran.returncode == 0, f"{hint}\n{ran.stdout}\n{ran.stderr}"
        if "--check-connections" in hint:
            assert len(re.findall(r"^demo-0\d .* OK\s*$", ran.stdout, re.MULTILINE)) == 4
    assert not list(other.iterdir()), "nothing may land in the folder the hints ran from"


# --- .dlt/secrets.toml.example ------------------------------------------------------------


def example_sections() -> dict[str, tuple[str, set[str]]]:
    """source name -> (source_type from the `# source_type = X` comment above it, its keys)."""
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)["sources"]
    types = dict(
        (name, kind)
        for kind, name in re.findall(
            r"^# source_type = (\w+).*\n\[sources\.(\w+)\]", text, flags=re.MULTILINE
        )
    )
    return {name: (types.get(name, "?"), set(values)) for name, values in data.items()}


def test_secrets_example_documents_every_key_of_every_source_type() -> None:
    sections = example_sections()
    documented = {kind: keys for kind, keys in sections.values()}
    assert set(documented) == set(REGISTRY), "one section per source_type"
    for source_type in REGISTRY:
        builder = get_builder(source_type)
        assert documented[source_type] == set(builder.required_keys) | set(builder.optional_keys), (
            source_type
        )


def test_secrets_example_resolves_like_a_real_secrets_file() -> None:
    resolver = SecretResolver([TomlSecrets(EXAMPLE)])
    for name, (source_type, _) in example_sections().items():
        builder = get_builder(source_type)
        found = resolver.resolve(name, builder.required_keys, builder.optional_keys)
        assert set(found) == set(builder.required_keys) | set(builder.optional_keys)


def test_secrets_example_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    builder_class = type(get_builder("postgresql"))
    monkeypatch.setattr(builder_class, "optional_keys", ("port", "password", "sslmode", "new"))
    with pytest.raises(AssertionError):
        test_secrets_example_documents_every_key_of_every_source_type()
