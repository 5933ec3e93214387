"""The deployment pipelines as code: .github/workflows/deploy.yml and azure-pipelines.yml.

No runner can execute them here, so they are checked offline: each against its official
JSON schema (check-jsonschema's vendored copies: the GitHub workflow schema from
SchemaStore, Microsoft's Azure Pipelines schema), and structurally: test -> provision ->
publish in that order, OIDC / workload identity federation with no secret anywhere, the
README's test command on Python 3.11 and 3.12.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
AZDO = ROOT / "azure-pipelines.yml"
CHECK = Path(sys.executable).parent / "check-jsonschema"


def schema_check(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    # python regex dialect: the Azure Pipelines schema has patterns ECMAScript mode rejects
    return subprocess.run(
        [str(CHECK), "--regex-variant", "python", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("path", "schema"),
    [(WORKFLOW, "vendor.github-workflows"), (AZDO, "vendor.azure-pipelines")],
    ids=["github", "azure-devops"],
)
def test_pipeline_matches_its_schema(path: Path, schema: str) -> None:
    proc = schema_check(path, schema)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps: run-this\n")
    assert schema_check(bad, "vendor.github-workflows").returncode != 0
    bad.write_text("stages:\n  - stage: A\n    jobs:\n      - job: a\n        stepz: []\n")
    assert schema_check(bad, "vendor.azure-pipelines").returncode != 0


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def run_lines(steps: list[dict[str, Any]]) -> list[str]:
    lines = []
    for step in steps:
        for key in ("run", "script"):
            if key in step:
                lines.append(" ".join(str(step[key]).split()))
        script = (step.get("inputs") or {}).get("inlineScript")
        if script:
            lines.extend(" ".join(line.split()) for line in script.splitlines() if line.strip())
    return lines


def check_github(workflow: dict[str, Any], text: str) -> list[str]:
    problems: list[str] = []
    jobs = workflow["jobs"]
    test, deploy = jobs.get("test", {}), jobs.get("deploy", {})
    if "python3 tasks.py test" not in run_lines(test.get("steps", [])):
        problems.append("test job must run the README's test command")
    if test.get("strategy", {}).get("matrix", {}).get("python") != ["3.11", "3.12"]:
        problems.append("test job must run on Python 3.11 and 3.12")
    if deploy.get("needs") != "test":
        problems.append("deploy must need the tests")
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append("workflow-level permissions must be contents: read only")
    if deploy.get("permissions", {}).get("id-token") != "write":
        problems.append("deploy needs id-token: write (OIDC)")
    logins = [
        s for s in deploy.get("steps", []) if str(s.get("uses", "")).startswith("azure/login@")
    ]
    if len(logins) != 1:
        problems.append("deploy must sign in with azure/login")
    for login in logins:
        inputs = login.get("with", {})
        if set(inputs) != {"client-id", "tenant-id", "subscription-id"}:
            problems.append(f"azure/login must use OIDC inputs only, got {sorted(inputs)}")
        for value in inputs.values():
            if not re.fullmatch(r"\$\{\{ vars\.AZURE_[A-Z_]+ \}\}", str(value)):
                problems.append(f"azure/login input {value!r} must come from a repository variable")
    lines = run_lines(deploy.get("steps", []))
    order = [
        next((i for i, line in enumerate(lines) if needle in line), None)
        for needle in (
            "azd auth login",
            "azd provision --no-prompt",
            "azd deploy ingest --no-prompt",
        )
    ]
    if None in order or order != sorted(order):
        problems.append(f"deploy must run azd auth login, provision, deploy in order: {lines}")
    if not any("--federated-credential-provider github" in line for line in lines):
        problems.append("azd must sign in with the GitHub federated credential")
    if re.search(r"\$\{\{\s*secrets\.|client-secret|creds:", text, re.IGNORECASE):
        problems.append("the workflow must not use secrets")
    if "pull_request" not in workflow["on"] or "push" not in workflow["on"]:
        problems.append("the workflow must run on pushes and pull requests")
    if "pull_request" not in str(deploy.get("if", "")):
        problems.append("pull requests must not deploy")
    return problems


def check_azure_devops(pipeline: dict[str, Any], text: str) -> list[str]:
    problems: list[str] = []
    stages = {s["stage"]: s for s in pipeline.get("stages", [])}
    if list(stages) != ["Test", "Deploy"]:
        return [f"stages must be Test, Deploy: {list(stages)}"]
    (test_job,) = stages["Test"]["jobs"]
    if "python3 tasks.py test" not in run_lines(test_job.get("steps", [])):
        problems.append("Test must run the README's test command")
    versions = sorted(m["pythonVersion"] for m in test_job["strategy"]["matrix"].values())
    if versions != ["3.11", "3.12"]:
        problems.append(f"Test must run on Python 3.11 and 3.12: {versions}")
    deploy = stages["Deploy"]
    if deploy.get("dependsOn") != "Test" or "succeeded()" not in deploy.get("condition", ""):
        problems.append("Deploy must depend on Test succeeding")
    (job,) = deploy["jobs"]
    steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    cli = [s for s in steps if s.get("task") == "AzureCLI@2"]
    if not cli or any(s["inputs"].get("azureSubscription") != "$(serviceConnection)" for s in cli):
        problems.append("Azure steps must use the service connection (workload identity)")
    lines = run_lines(steps)
    order = [
        next((i for i, line in enumerate(lines) if needle in line), None)
        for needle in (
            'azd config set auth.useAzCliAuth "true"',
            "azd provision --no-prompt",
            "azd deploy ingest --no-prompt",
        )
    ]
    if None in order or order != sorted(order):
        problems.append(f"Deploy must configure azd, provision, deploy in order: {lines}")
    if re.search(r"\$\(\w*(secret|password|key)\w*\)|client-secret", text, re.IGNORECASE):
        problems.append("the pipeline must not use secrets")
    return problems


def test_github_workflow_tests_then_provisions_then_publishes_with_oidc() -> None:
    assert check_github(load(WORKFLOW), WORKFLOW.read_text()) == []


def test_azure_devops_pipeline_tests_then_provisions_then_publishes() -> None:
    assert check_azure_devops(load(AZDO), AZDO.read_text()) == []


def test_pipeline_checks_can_fail() -> None:
    workflow, text = load(WORKFLOW), WORKFLOW.read_text()
    workflow["jobs"]["deploy"]["needs"] = []
    workflow["jobs"]["deploy"]["steps"].reverse()
    problems = check_github(workflow, text + "\n# ${{ secrets.AZURE_CLIENT_SECRET }}\n")
    assert any("need the tests" in p for p in problems)
    assert any("in order" in p for p in problems)
    assert any("must not use secrets" in p for p in problems)
    pipeline = load(AZDO)
    pipeline["stages"][1]["dependsOn"] = []
    assert any("depend on Test" in p for p in check_azure_devops(pipeline, AZDO.read_text()))
