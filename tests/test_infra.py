"""Infrastructure as code: structural security tests on the Bicep templates + checkov.

No Bicep compiler can run here, so every template under infra/ is parsed with pycep-parser
(a real Bicep grammar) and the assertions run on the parsed tree: role assignments and their
scopes, storage hardening, Key Vault mode, identity-based host storage, no secret outputs,
and coverage of the settings catalogue (`ingest.settings.CATALOGUE`).

Every checker returns a list of problems; the mutation tests at the bottom feed each checker a
deliberately broken copy of the real tree, proving that every check can fail.

pycep-parser and checkov: checkov pins packages (packaging<24, python-dateutil<3) that clash
with the app's venv, so `requirements-infra.txt` lives in `.venv-infra/`. pycep is imported
in-process when the running venv has it, otherwise the templates are parsed by
`.venv-infra/bin/python`; checkov runs from `.venv-infra/bin/checkov` when present.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ingest.settings import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MAIN = "main.bicep"
FUNCTION_APP = "modules/functionapp.bicep"
PARAMS_EXAMPLE = INFRA / "main.parameters.example.json"
INFRA_VENV = ROOT / ".venv-infra"

ROLE = {
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
ACCOUNT = "Microsoft.Storage/storageAccounts"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
# (role, file, resource type of the scope): exactly these assignments, nothing broader.
EXPECTED_ROLE_ASSIGNMENTS = {
    (ROLE["Storage Blob Data Contributor"], "modules/lake.bicep", CONTAINER),
    (ROLE["Storage Blob Data Owner"], "modules/hoststorage.bicep", ACCOUNT),
    (ROLE["Storage Queue Data Contributor"], "modules/hoststorage.bicep", ACCOUNT),
    (ROLE["Storage Table Data Contributor"], "modules/hoststorage.bicep", ACCOUNT),
    (
        ROLE["Key Vault Secrets User"],
        "modules/keyvault.bicep",
        "Microsoft.KeyVault/vaults",
    ),
    (
        ROLE["Monitoring Metrics Publisher"],
        "modules/monitoring.bicep",
        "Microsoft.Insights/components",
    ),
}
# App settings Flex Consumption rejects, or that would carry a key.
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}
SECRET_TEXT = re.compile(
    r"AccountKey|SharedAccessKey|InstrumentationKey=|listKeys|listSecrets|"
    r"listConnectionStrings|primaryKey|secondaryKey|password",
    re.IGNORECASE,
)
SECRET_OUTPUT_NAME = re.compile(
    r"access_?key|account_?key|primary_?key|instrumentation_?key|secret|password|"
    r"connection_?string|sas|token",
    re.IGNORECASE,
)

# ----------------------------------------------------------------------------- parsing

_PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from pycep import BicepParser
out = {p: BicepParser().parse(file_path=Path(p)) for p in sys.argv[1:]}
print(json.dumps(out, default=str))
"""


def _infra_python() -> Path:
    return INFRA_VENV / "bin" / "python"


def _bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parse_all() -> dict[str, dict[str, Any]]:
    files = _bicep_files()
    try:
        from pycep import BicepParser
    except ImportError:
        python = _infra_python()
        if not python.exists():
            pytest.fail(
                "pycep-parser is not importable and .venv-infra is missing: "
                "python3 -m venv .venv-infra && .venv-infra/bin/pip install -r "
                "requirements-infra.txt"
            )
        proc = subprocess.run(
            [str(python), "-c", _PARSE_SCRIPT, *map(str, files)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        raw = json.loads(proc.stdout)
        return {str(Path(k).relative_to(INFRA)): v for k, v in raw.items()}
    # Round-trip through JSON so both paths give the same plain structure.
    return {
        str(f.relative_to(INFRA)): json.loads(
            json.dumps(BicepParser().parse(file_path=f), default=str)
        )
        for f in files
    }


@pytest.fixture()
def trees() -> dict[str, dict[str, Any]]:
    """A fresh deep copy per test, so mutation tests never leak into others."""
    return copy.deepcopy(_parse_all())


# ----------------------------------------------------------------------------- tree helpers


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resources(tree: dict[str, Any], rtype: str | None = None) -> dict[str, dict[str, Any]]:
    found = tree.get("resources") or {}
    return {n: r for n, r in found.items() if rtype is None or r["type"] == rtype}


def cfg(resource: dict[str, Any], *path: str) -> Any:
    node: Any = resource["config"]
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def chain(expr: Any) -> str | None:
    """`a.b.c` for a property-access expression (or a bare identifier), else None."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        if op.get("type") == "property_accessor":
            left = chain(op["operands"]["operand_1"])
            right = chain(op["operands"]["operand_2"])
            if left is not None and right is not None:
                return f"{left}.{right}"
    return None


def resolve_var(tree: dict[str, Any], expr: Any) -> Any:
    variables = tree.get("variables") or {}
    while isinstance(expr, str) and expr in variables:
        expr = variables[expr]["value"]
    return expr


def literal_strings(tree: dict[str, Any], expr: Any) -> list[str]:
    """Every string reachable from expr, following variable references."""
    out: list[str] = []
    for node in walk(resolve_var(tree, expr)):
        if isinstance(node, str):
            resolved = resolve_var(tree, node)
            if resolved is node:
                out.append(node)
            else:
                out.extend(literal_strings(tree, resolved))
    return out


def app_settings(tree: dict[str, Any]) -> dict[str, Any]:
    (site,) = resources(tree, "Microsoft.Web/sites").values()
    settings = cfg(site, "properties", "siteConfig", "appSettings")
    assert isinstance(settings, list), "appSettings must be a literal array"
    return {s["name"]: s["value"] for s in settings}


def module_params(main: dict[str, Any], module_path: str) -> dict[str, Any]:
    for module in (main.get("modules") or {}).values():
        if module.get("detail", {}).get("path") == module_path:
            return module["config"]["params"]
    raise AssertionError(f"main.bicep does not call {module_path}")


def main_default(trees: dict[str, Any], setting_value: Any) -> tuple[bool, Any]:
    """Follow an app-setting value (param or string(param)) to main.bicep's param default."""
    expr = setting_value
    if isinstance(expr, dict) and expr.get("function", {}).get("type") == "string":
        expr = expr["function"]["parameters"]["value_to_convert"]
    app_params = trees[FUNCTION_APP].get("parameters") or {}
    if not isinstance(expr, str) or expr not in app_params:
        return False, None
    passed = module_params(trees[MAIN], FUNCTION_APP).get(expr)
    main_params = trees[MAIN].get("parameters") or {}
    if not isinstance(passed, str) or passed not in main_params:
        return False, None
    return True, main_params[passed]["default"]


# ----------------------------------------------------------------------------- checkers


def check_role_assignments(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for file, tree in trees.items():
        all_res = resources(tree)
        for name, ra in resources(tree, "Microsoft.Authorization/roleAssignments").items():
            role_def = cfg(ra, "properties", "roleDefinitionId")
            fn = role_def.get("function", {}) if isinstance(role_def, dict) else {}
            if fn.get("type") != "subscription_resource_id":
                problems.append(f"{file}:{name}: roleDefinitionId is not subscriptionResourceId")
                continue
            role = resolve_var(tree, fn["parameters"]["resource_name_1"])
            scope = cfg(ra, "scope")
            scope_type = all_res[scope]["type"] if scope in all_res else f"<{scope}>"
            seen.add((role, file, scope_type))
            if cfg(ra, "properties", "principalType") != "ServicePrincipal":
                problems.append(f"{file}:{name}: principalType must be ServicePrincipal")
    for missing in sorted(EXPECTED_ROLE_ASSIGNMENTS - seen):
        problems.append(f"missing role assignment {missing}")
    for extra in sorted(seen - EXPECTED_ROLE_ASSIGNMENTS):
        problems.append(f"unexpected (too broad or unknown) role assignment {extra}")
    return problems


def check_storage_accounts(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    expected = {
        "allowSharedKeyAccess": False,
        "minimumTlsVersion": "TLS1_2",
        "allowBlobPublicAccess": False,
        "supportsHttpsTrafficOnly": True,
    }
    count = 0
    for file, tree in trees.items():
        for name, account in resources(tree, ACCOUNT).items():
            if account.get("existing"):
                continue
            count += 1
            for key, want in expected.items():
                got = cfg(account, "properties", key)
                if got != want:
                    problems.append(f"{file}:{name}: {key} is {got!r}, want {want!r}")
    if count != 2:
        problems.append(f"expected 2 storage accounts (lake, host), found {count}")
    return problems


def check_lake(trees: dict[str, Any]) -> list[str]:
    tree = trees["modules/lake.bicep"]
    problems: list[str] = []
    accounts = {n: a for n, a in resources(tree, ACCOUNT).items() if not a.get("existing")}
    if len(accounts) != 1:
        return [f"lake.bicep must define exactly one storage account, found {list(accounts)}"]
    ((account_name, account),) = accounts.items()
    if cfg(account, "properties", "isHnsEnabled") is not True:
        problems.append("lake: isHnsEnabled must be true (ADLS Gen2)")
    containers = resources(tree, CONTAINER)
    blob_services = resources(tree, "Microsoft.Storage/storageAccounts/blobServices")
    default_name = (tree["parameters"].get("containerName") or {}).get("default")
    raw = [
        c
        for c in containers.values()
        if cfg(c, "name") == "containerName"
        and default_name == "raw-data"
        and cfg(blob_services.get(cfg(c, "parent"), {"config": {}}), "parent") == account_name
    ]
    if not raw:
        problems.append("lake: no `raw-data` container under the HNS account")
    main_default_container = trees[MAIN]["parameters"]["lakeContainerName"]["default"]
    if main_default_container != "raw-data":
        problems.append(f"main.bicep lakeContainerName default is {main_default_container!r}")
    return problems


def check_key_vault(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    vaults = resources(trees["modules/keyvault.bicep"], "Microsoft.KeyVault/vaults")
    if len(vaults) != 1:
        return [f"expected one Key Vault, found {list(vaults)}"]
    (vault,) = vaults.values()
    for key in ("enableRbacAuthorization", "enablePurgeProtection", "enableSoftDelete"):
        if cfg(vault, "properties", key) is not True:
            problems.append(f"keyvault: {key} must be true")
    return problems


def check_monitoring(trees: dict[str, Any]) -> list[str]:
    tree = trees["modules/monitoring.bicep"]
    problems: list[str] = []
    (appi,) = resources(tree, "Microsoft.Insights/components").values()
    workspaces = resources(tree, "Microsoft.OperationalInsights/workspaces")
    ws_ref = chain(cfg(appi, "properties", "WorkspaceResourceId")) or ""
    if ws_ref.split(".")[0] not in workspaces or not ws_ref.endswith(".id"):
        problems.append("App Insights must be workspace-based on the Log Analytics workspace")
    if cfg(appi, "properties", "DisableLocalAuth") is not True:
        problems.append("App Insights must disable local (key) auth: Entra ID only")
    return problems


def check_function_app(trees: dict[str, Any]) -> list[str]:
    tree = trees[FUNCTION_APP]
    problems: list[str] = []
    (site,) = resources(tree, "Microsoft.Web/sites").values()
    (plan_name, plan) = next(iter(resources(tree, "Microsoft.Web/serverfarms").items()))
    if cfg(plan, "sku", "tier") != "FlexConsumption" or cfg(plan, "sku", "name") != "FC1":
        problems.append("plan must be Flex Consumption (FC1)")
    if chain(cfg(site, "properties", "serverFarmId")) != f"{plan_name}.id":
        problems.append("site must run on the Flex Consumption plan")
    if "linux" not in str(cfg(site, "kind")):
        problems.append("site must be a Linux function app")
    runtime = cfg(site, "properties", "functionAppConfig", "runtime") or {}
    version = runtime.get("version")
    version = tree["parameters"].get(version, {}).get("decorators", version)
    allowed = [d["argument"] for d in version if d.get("type") == "allowed"] if version else []
    main_default_py = trees[MAIN]["parameters"]["pythonVersion"]["default"]
    main_allowed = [
        d["argument"]
        for d in trees[MAIN]["parameters"]["pythonVersion"]["decorators"]
        if d.get("type") == "allowed"
    ]
    if (
        runtime.get("name") != "python"
        or allowed != [["3.11", "3.12"]]
        or main_allowed != allowed
        or main_default_py != "3.11"
    ):
        problems.append(
            f"runtime must be python 3.11 or 3.12 (default 3.11), got {runtime} {allowed}"
        )
    if cfg(site, "identity", "type") != "UserAssigned":
        problems.append("site identity must be UserAssigned")
    if cfg(site, "properties", "httpsOnly") is not True:
        problems.append("httpsOnly must be true")
    auth = cfg(
        site,
        "properties",
        "functionAppConfig",
        "deployment",
        "storage",
        "authentication",
    )
    if not auth or auth.get("type") != "UserAssignedIdentity":
        problems.append("deployment storage must authenticate with the user-assigned identity")
    settings = app_settings(tree)
    host_storage = resources(tree, ACCOUNT)
    want = {
        "AzureWebJobsStorage__credential": lambda v: v == "managedidentity",
        "AzureWebJobsStorage__clientId": lambda v: v == "identityClientId",
        "AzureWebJobsStorage__accountName": lambda v: (
            (chain(v) or "").split(".")[0] in host_storage and (chain(v) or "").endswith(".name")
        ),
    }
    for name, ok in want.items():
        if name not in settings or not ok(settings[name]):
            problems.append(f"identity-based host storage: {name} missing or wrong")
    for name in sorted(FORBIDDEN_SETTINGS & settings.keys()):
        problems.append(f"app setting {name} must not be set (key-based or rejected by Flex)")
    return problems


def check_no_keys_anywhere(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for file, tree in trees.items():
        for node in walk({k: v for k, v in tree.items() if k != "parameters"}):
            if isinstance(node, str) and SECRET_TEXT.search(node):
                problems.append(f"{file}: key material referenced: {node[:80]!r}")
            if isinstance(node, dict):
                fn = node.get("function", {})
                op = node.get("operator", {})
                if isinstance(fn, dict) and str(fn.get("type", "")).startswith("list"):
                    problems.append(f"{file}: list* function (keys) used")
                if (
                    isinstance(op, dict)
                    and op.get("type") == "function_accessor"
                    and str(op["operands"].get("func_name", "")).startswith("list")
                ):
                    problems.append(f"{file}: .list*() accessor (keys) used")
    return problems


def check_outputs(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for file, tree in trees.items():
        for name, output in (tree.get("outputs") or {}).items():
            if any(d.get("type") == "secure" for d in output.get("decorators", [])):
                problems.append(f"{file}: output {name} is @secure")
            if SECRET_OUTPUT_NAME.search(name):
                problems.append(f"{file}: output {name} looks like a secret")
            for node in walk(output["value"]):
                if isinstance(node, str) and re.search(
                    r"connectionstring|instrumentationkey|listkeys|primarykey|secret",
                    node,
                    re.IGNORECASE,
                ):
                    problems.append(f"{file}: output {name} exposes {node!r}")
    return problems


def check_catalogue(trees: dict[str, Any], catalogue=CATALOGUE) -> list[str]:
    problems: list[str] = []
    settings = app_settings(trees[FUNCTION_APP])
    for spec in catalogue:
        if spec.scope == "app" and spec.name not in settings:
            problems.append(f"app setting {spec.name} (scope app) is not set by the template")
        if spec.scope == "local" and spec.name in settings:
            problems.append(f"app setting {spec.name} (scope local) must not be deployed")
        if spec.scope == "app" and spec.name in settings and spec.default is not None:
            resolved, default = main_default(trees, settings[spec.name])
            if resolved and str(default) != spec.default:
                problems.append(
                    f"{spec.name}: main.bicep default {default!r} != catalogue {spec.default!r}"
                )
    return problems


def check_setting_values(trees: dict[str, Any]) -> list[str]:
    """The Azure-specific values point at the right resources."""
    settings = app_settings(trees[FUNCTION_APP])
    wiring = module_params(trees[MAIN], FUNCTION_APP)
    app_res = resources(trees[FUNCTION_APP])
    problems: list[str] = []

    def via(setting: str, param: str, source: str) -> None:
        if settings.get(setting) != param or chain(wiring.get(param)) != source:
            problems.append(f"{setting} must be {param} <- {source}")

    via("AZURE_STORAGE_ACCOUNT_NAME", "lakeAccountName", "lake.outputs.name")
    via("AZURE_CLIENT_ID", "identityClientId", "identity.outputs.clientId")
    via("AZURE_KEY_VAULT_URL", "keyVaultUri", "keyVault.outputs.uri")
    if chain(wiring.get("lakeContainerName")) != "lake.outputs.containerName":
        problems.append("lakeContainerName must come from the lake module")
    if settings.get("INGEST_DESTINATION") != (
        "abfss://${lakeContainerName}@${lakeAccountName}.dfs.core.windows.net"
    ):
        problems.append(f"INGEST_DESTINATION is {settings.get('INGEST_DESTINATION')!r}")
    conn = chain(settings.get("APPLICATIONINSIGHTS_CONNECTION_STRING")) or ""
    appi = app_res.get(conn.split(".")[0], {})
    if appi.get("type") != "Microsoft.Insights/components" or not conn.endswith(
        ".properties.ConnectionString"
    ):
        problems.append("APPLICATIONINSIGHTS_CONNECTION_STRING must be the component's property")
    if settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") != (
        "ClientId=${identityClientId};Authorization=AAD"
    ):
        problems.append("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must use Entra ID (AAD)")
    return problems


def check_alerts(trees: dict[str, Any]) -> list[str]:
    tree = trees["modules/alerts.bicep"]
    problems: list[str] = []
    rules = resources(tree, "Microsoft.Insights/scheduledQueryRules")
    texts = {}
    for name, rule in rules.items():
        for crit in cfg(rule, "properties", "criteria", "allOf") or []:
            texts[name] = "\n".join(literal_strings(tree, crit["query"]))
        groups = cfg(rule, "properties", "actions", "actionGroups")
        if "actionGroupId" not in literal_strings(tree, groups):
            problems.append(f"alert {name} is not wired to the actionGroupId parameter")
        if cfg(rule, "properties", "scopes") != ["appInsightsId"]:
            problems.append(f"alert {name} must query the Application Insights component")
    table = [
        t
        for t in texts.values()
        if "IngestionTableCompleted" in t and 'customDimensions.status) == "FAILED"' in t
    ]
    run = [
        t
        for t in texts.values()
        if "IngestionRunCompleted" in t
        and "customDimensions.jobs_failed" in t
        and "completed == 0" in t
        # the missing-run part counts only runs started by the timer
        and 'customDimensions.trigger) == "schedule"' in t
    ]
    cdc = [
        t
        for t in texts.values()
        if 'name == "IngestionCdcSlot"' in t and "customDimensions.retained_bytes" in t
    ]
    if not cdc:
        problems.append("no alert on IngestionCdcSlot retained bytes")
    if module_params(trees[MAIN], "modules/alerts.bicep").get("cdcRetainedWalMb") != (
        "cdcRetainedWalMb"
    ):
        problems.append("main.bicep does not pass cdcRetainedWalMb to the alerts")
    if not table:
        problems.append("no alert on IngestionTableCompleted with status FAILED")
    if not run:
        problems.append("no alert on IngestionRunCompleted failed or missing")
    if "actionGroupId" not in (trees[MAIN].get("parameters") or {}):
        problems.append("main.bicep has no actionGroupId parameter")
    if module_params(trees[MAIN], "modules/alerts.bicep").get("actionGroupId") != "actionGroupId":
        problems.append("main.bicep does not pass actionGroupId to the alerts")
    return problems


WORKBOOK = "modules/workbook.bicep"
WORKBOOK_JSON = INFRA / "workbooks" / "ingestion.workbook.json"


def check_workbook(trees: dict[str, Any]) -> list[str]:
    """A shared Microsoft.Insights/workbooks whose content is the checked-in JSON (the queries
    tests/test_workbook.py checks), bound to the Application Insights component, and deployed
    by main.bicep with the component's id."""
    tree = trees[WORKBOOK]
    problems: list[str] = []
    books = resources(tree, "Microsoft.Insights/workbooks")
    if len(books) != 1:
        return [f"workbook.bicep must define one Microsoft.Insights/workbooks, found {list(books)}"]
    (book,) = books.values()
    if cfg(book, "kind") != "shared":
        problems.append("the workbook must be kind 'shared' (visible to the team)")
    if "appInsightsId" not in literal_strings(tree, cfg(book, "properties", "sourceId")):
        problems.append("the workbook's sourceId must be the appInsightsId parameter")
    content = resolve_var(tree, cfg(book, "properties", "serializedData"))
    loaded = [
        node["function"]["parameters"]["file_path"]
        for node in walk(content)
        if isinstance(node, dict) and node.get("function", {}).get("type") == "load_text_content"
    ]
    if [str((INFRA / "modules" / p).resolve()) for p in loaded] != [str(WORKBOOK_JSON)]:
        problems.append(f"serializedData must load {WORKBOOK_JSON.relative_to(INFRA)}: {loaded}")
    elif "appInsightsId" not in literal_strings(tree, content):
        problems.append("the workbook's fallback resource must be replaced by appInsightsId")
    try:
        passed = module_params(trees[MAIN], WORKBOOK).get("appInsightsId")
    except AssertionError as exc:
        return [*problems, str(exc)]
    if chain(passed) != "monitoring.outputs.appInsightsId":
        problems.append("main.bicep must pass monitoring.outputs.appInsightsId to the workbook")
    return problems


def check_parameters_example(trees: dict[str, Any], example: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    params = trees[MAIN].get("parameters") or {}
    given = example.get("parameters", {})
    for name in sorted(given.keys() - params.keys()):
        problems.append(f"example sets {name}, which main.bicep does not declare")
    for name in sorted(n for n, p in params.items() if p["default"] is None):
        if name not in given:
            problems.append(f"example lacks required parameter {name}")
    for name, entry in given.items():
        if name not in params:
            continue
        ptype, value = params[name]["type"], entry.get("value")
        types = {"string": str, "int": int, "bool": bool, "object": dict, "array": list}
        if ptype in types and not isinstance(value, types[ptype]):
            problems.append(f"example {name}={value!r} is not a {ptype}")
        for dec in params[name]["decorators"]:
            kind, arg = dec.get("type"), dec.get("argument")
            if kind == "allowed" and value not in arg:
                problems.append(f"example {name}={value!r} not in @allowed")
            if kind == "min_value" and isinstance(value, int) and value < arg:
                problems.append(f"example {name}={value!r} below @minValue({arg})")
            if kind == "max_value" and isinstance(value, int) and value > arg:
                problems.append(f"example {name}={value!r} above @maxValue({arg})")
    # App-setting parameters in the example must carry the catalogue defaults.
    settings = app_settings(trees[FUNCTION_APP])
    wiring = module_params(trees[MAIN], FUNCTION_APP)
    for spec in CATALOGUE:
        value = settings.get(spec.name)
        if isinstance(value, dict) and value.get("function", {}).get("type") == "string":
            value = value["function"]["parameters"]["value_to_convert"]
        main_param = wiring.get(value) if isinstance(value, str) else None
        if (
            isinstance(main_param, str)
            and main_param in given
            and spec.default is not None
            and str(given[main_param]["value"]) != spec.default
        ):
            problems.append(
                f"example {main_param}={given[main_param]['value']!r} != "
                f"catalogue {spec.name}={spec.default!r}"
            )
    return problems


# ----------------------------------------------------------------------------- evaluation
# A small evaluator of the parsed templates: given main.bicep's parameter values, it follows
# the module calls (conditions included) and evaluates each deployed resource's properties:
# parameters, variables, `cond ? a : b`, `!`, `&&`, `||`, `==`, `!=`, `empty()`. References to
# resources, module outputs and environment() stay symbolic (`Ref('network.outputs.x')`).


class Ref(str):
    """A value only Azure knows at deployment time, e.g. `lake.id`."""


def _module_file(file: str, path: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(file), path))


def evaluate(tree: dict[str, Any], expr: Any, values: dict[str, Any]) -> Any:
    if isinstance(expr, list):
        return [evaluate(tree, e, values) for e in expr]
    if isinstance(expr, str):
        if expr in values:
            return values[expr]
        variables = tree.get("variables") or {}
        if expr in variables:
            return evaluate(tree, variables[expr]["value"], values)
        if expr in (tree.get("resources") or {}) or expr in (tree.get("modules") or {}):
            return Ref(expr)
        return expr  # a literal (interpolations stay as written)
    if not isinstance(expr, dict):
        return expr
    if isinstance(expr.get("operator"), dict) and "operands" in expr["operator"]:
        kind, ops = expr["operator"]["type"], expr["operator"]["operands"]
        if kind == "conditional":
            branch = "true_value" if evaluate(tree, ops["condition"], values) else "false_value"
            return evaluate(tree, ops[branch], values)
        if kind == "not":
            return not evaluate(tree, ops["bool_value"], values)
        if kind in ("and", "or", "equals", "not_equals"):
            left, right = (evaluate(tree, v, values) for v in ops.values())
            return {
                "and": lambda: left and right,
                "or": lambda: left or right,
                "equals": lambda: left == right,
                "not_equals": lambda: left != right,
            }[kind]()
        if kind == "property_accessor":
            path = (chain(expr) or "").split(".")
            base = evaluate(tree, path[0], values)
            for key in path[1:]:
                if isinstance(base, dict):
                    base = base[key]
                else:
                    base = Ref(f"{base}.{key}")
            return base
        return Ref(json.dumps(expr))
    if isinstance(expr.get("function"), dict) and "type" in expr["function"]:
        fn = expr["function"]
        if fn.get("type") == "empty":
            (arg,) = fn["parameters"].values()
            return evaluate(tree, arg, values) in ("", [], {}, None)
        return Ref(json.dumps(expr))
    return {k: evaluate(tree, v, values) for k, v in expr.items()}


def deploy(
    trees: dict[str, Any], overrides: dict[str, Any] | None = None
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(file, name, type, evaluated config) of every resource a deployment of main.bicep with
    these parameter values creates; module outputs seen from the caller are Refs named
    `<module>.outputs.<name>`."""
    out: list[tuple[str, str, str, dict[str, Any]]] = []

    def instantiate(file: str, passed: dict[str, Any]) -> None:
        tree = trees[file]
        values = {
            name: passed[name] if name in passed else evaluate(tree, p["default"], {})
            for name, p in (tree.get("parameters") or {}).items()
        }
        for name, res in (tree.get("resources") or {}).items():
            if res.get("existing"):
                continue
            config = res["config"]
            if "condition" in config:
                if not evaluate(tree, config["condition"], values):
                    continue
                config = config["config"]
            out.append((file, name, res["type"], evaluate(tree, config, values)))
        for module in (tree.get("modules") or {}).values():
            config = module["config"]
            if "condition" in config:
                if not evaluate(tree, config["condition"], values):
                    continue
                config = config["config"]
            params = evaluate(tree, config.get("params") or {}, values)
            instantiate(_module_file(file, module["detail"]["path"]), params)

    instantiate(MAIN, dict(overrides or {}))
    return out


PRIVATE = {"privateNetworking": True}
CLOSED = {"privateNetworking": True, "functionAppPublicAccess": False}
#: (module file of the target, target resource, group id) of every private endpoint
EXPECTED_ENDPOINTS = {
    ("modules/lake.bicep", "lake", "blob"),
    ("modules/lake.bicep", "lake", "dfs"),
    ("modules/hoststorage.bicep", "hostStorage", "blob"),
    ("modules/hoststorage.bicep", "hostStorage", "queue"),
    ("modules/hoststorage.bicep", "hostStorage", "table"),
    ("modules/keyvault.bicep", "vault", "vault"),
}
PUBLIC_TYPES = (ACCOUNT, "Microsoft.KeyVault/vaults", "Microsoft.Web/sites")


def _endpoints(deployed) -> dict[tuple[str, str], dict[str, Any]]:
    """(target ref, group id) -> the endpoint's evaluated config, with its zone id added."""
    zone_groups = [c for _, _, t, c in deployed if t.endswith("privateDnsZoneGroups")]
    found = {}
    for _, _, rtype, config in deployed:
        if rtype != "Microsoft.Network/privateEndpoints":
            continue
        (conn,) = config["properties"]["privateLinkServiceConnections"]
        (group,) = conn["properties"]["groupIds"]
        zones = [
            z["properties"]["privateDnsZoneConfigs"][0]["properties"]["privateDnsZoneId"]
            for z in zone_groups
            if z["properties"]["privateDnsZoneConfigs"][0]["name"] == group
        ]
        found[(conn["properties"]["privateLinkServiceId"], group)] = {
            "subnet": config["properties"]["subnet"]["id"],
            "zones": zones,
        }
    return found


def check_private_networking(trees: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    params = trees[MAIN]["parameters"]
    if params.get("privateNetworking", {}).get("default") is not False:
        problems.append("main.bicep needs a privateNetworking parameter, default false")

    # off (the default): today's simple deployment, nothing private, public endpoints
    default = deploy(trees)
    kinds = {t for _, _, t, _ in default}
    for rtype in kinds:
        if rtype.startswith("Microsoft.Network/"):
            problems.append(f"default deployment creates {rtype}")
    for file, name, rtype, config in default:
        if rtype in PUBLIC_TYPES and config["properties"].get("publicNetworkAccess") != "Enabled":
            problems.append(f"default: {file}:{name} is not publicly reachable")
        if rtype == "Microsoft.Web/sites" and config["properties"].get("virtualNetworkSubnetId"):
            problems.append("default: the app must not be VNet-integrated")

    # on: VNet integration, endpoints + zones, no public access to storage or Key Vault
    on = deploy(trees, PRIVATE)
    vnets = [c for _, _, t, c in on if t == "Microsoft.Network/virtualNetworks"]
    if len(vnets) != 1:
        return [*problems, f"private: expected one VNet, found {len(vnets)}"]
    subnets = {s["name"]: s["properties"] for s in vnets[0]["properties"]["subnets"]}
    delegations = [
        d["properties"]["serviceName"] for d in subnets.get("snet-app", {}).get("delegations", [])
    ]
    if delegations != ["Microsoft.App/environments"]:
        problems.append(
            f"app subnet must be delegated to Microsoft.App/environments: {delegations}"
        )
    for subnet, props in subnets.items():
        if "networkSecurityGroup" not in props:
            problems.append(f"subnet {subnet} has no NSG")
    (site,) = [c for _, _, t, c in on if t == "Microsoft.Web/sites"]
    if site["properties"].get("virtualNetworkSubnetId") != "network.outputs.appSubnetId":
        problems.append("private: the app must be VNet-integrated into network's app subnet")
    for file, name, rtype, config in on:
        props = config.get("properties", {})
        if rtype in (ACCOUNT, "Microsoft.KeyVault/vaults"):
            acls = props.get("networkAcls") or {}
            if props.get("publicNetworkAccess") != "Disabled":
                problems.append(f"private: {file}:{name} publicNetworkAccess is not Disabled")
            if acls.get("defaultAction") != "Deny" or acls.get("bypass") != "None":
                problems.append(f"private: {file}:{name} network ACL must be Deny, bypass None")
    targets = {
        (file, name): Ref(f"{name}.id")
        for file, name, rtype, _ in on
        if rtype in (ACCOUNT, "Microsoft.KeyVault/vaults")
    }
    endpoints = _endpoints(on)
    want = {(targets.get((f, n), f"<{f}:{n}>"), g) for f, n, g in EXPECTED_ENDPOINTS}
    for missing in sorted(want - endpoints.keys()):
        problems.append(f"private: missing private endpoint {missing}")
    for extra in sorted(endpoints.keys() - want):
        problems.append(f"private: unexpected private endpoint {extra}")
    zones = {c["name"] for _, _, t, c in on if t == "Microsoft.Network/privateDnsZones"}
    linked = sum(1 for _, _, t, _ in on if t.endswith("/virtualNetworkLinks"))
    zone_of = {g: f"privatelink.{g}.${{storageSuffix}}" for g in ("blob", "queue", "table", "dfs")}
    zone_of["vault"] = "privatelink.vaultcore"  # from environment().suffixes.keyvaultDns
    if len(zones) != 5 or linked != 5:
        problems.append(f"private: expected 5 zones linked to the VNet: {sorted(zones)}, {linked}")
    for g in ("blob", "queue", "table", "dfs"):
        if zone_of[g] not in zones:
            problems.append(f"private: no private DNS zone {zone_of[g]}")
    for (target, group), endpoint in endpoints.items():
        if endpoint["subnet"] != "network.outputs.privateEndpointSubnetId":
            problems.append(f"private: endpoint {target}/{group} is not in the endpoint subnet")
        if endpoint["zones"] and any(
            z != f"network.outputs.zoneIds.{group}" for z in endpoint["zones"]
        ):
            problems.append(f"private: endpoint {target}/{group} registers in the wrong zone")
        if not endpoint["zones"]:
            problems.append(f"private: endpoint {target}/{group} has no DNS zone group")
    # the app's own endpoint: public by default, private only when asked
    if site["properties"].get("publicNetworkAccess") != "Enabled":
        problems.append("private: functionAppPublicAccess defaults to a reachable app")
    closed = deploy(trees, CLOSED)
    (site,) = [c for _, _, t, c in closed if t == "Microsoft.Web/sites"]
    if site["properties"].get("publicNetworkAccess") != "Disabled":
        problems.append("closed: the app's publicNetworkAccess must be Disabled")
    if (Ref("functionApp.id"), "sites") not in _endpoints(closed):
        problems.append("closed: the app needs a private endpoint (sites)")
    if "privatelink.azurewebsites.net" not in {
        c["name"] for _, _, t, c in closed if t == "Microsoft.Network/privateDnsZones"
    }:
        problems.append("closed: no privatelink.azurewebsites.net zone")
    return problems


def public_paths(deployed) -> list[str]:
    """Resources of a deployment that accept traffic from the internet."""
    return [
        f"{file}:{name}"
        for file, name, rtype, config in deployed
        if rtype in PUBLIC_TYPES and config["properties"].get("publicNetworkAccess") != "Disabled"
    ]


# ----------------------------------------------------------------------------- tests


def test_every_template_parses(trees: dict[str, Any]) -> None:
    expected = {
        "main.bicep",
        "modules/identity.bicep",
        "modules/monitoring.bicep",
        "modules/lake.bicep",
        "modules/hoststorage.bicep",
        "modules/keyvault.bicep",
        "modules/functionapp.bicep",
        "modules/alerts.bicep",
        "modules/network.bicep",
        "modules/workbook.bicep",
    }
    nested = {"modules/dnszone.bicep", "modules/privateendpoint.bicep"}
    assert expected | nested == trees.keys()
    for file, tree in trees.items():
        assert tree.get("resources") or tree.get("modules"), f"{file} parsed to nothing"
    called = {m["detail"]["path"] for m in trees[MAIN]["modules"].values()}
    assert called == {f for f in expected if f.startswith("modules/")}


CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "role_assignments": check_role_assignments,
    "storage_accounts": check_storage_accounts,
    "lake": check_lake,
    "key_vault": check_key_vault,
    "monitoring": check_monitoring,
    "function_app": check_function_app,
    "no_keys_anywhere": check_no_keys_anywhere,
    "outputs": check_outputs,
    "catalogue": check_catalogue,
    "setting_values": check_setting_values,
    "alerts": check_alerts,
    "private_networking": check_private_networking,
    "workbook": check_workbook,
}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_templates(check: str, trees: dict[str, Any]) -> None:
    assert CHECKS[check](trees) == []


def test_parameters_example_matches_template(trees: dict[str, Any]) -> None:
    example = json.loads(PARAMS_EXAMPLE.read_text())
    assert check_parameters_example(trees, example) == []
    # Every main.bicep parameter is shown in the example, so it documents all of them.
    assert set(example["parameters"]) == set(trees[MAIN]["parameters"])


def test_blob_contributor_is_scoped_to_the_container_not_the_account(trees) -> None:
    tree = trees["modules/lake.bicep"]
    (ra,) = resources(tree, "Microsoft.Authorization/roleAssignments").values()
    assert (
        resolve_var(
            tree,
            ra["config"]["properties"]["roleDefinitionId"]["function"]["parameters"][
                "resource_name_1"
            ],
        )
        == ROLE["Storage Blob Data Contributor"]
    )
    scope = resources(tree)[cfg(ra, "scope")]
    assert scope["type"] == CONTAINER
    assert cfg(scope, "name") == "containerName"


def deploy_doc_settings(text: str) -> set[str]:
    """Setting names in the first column of DEPLOY.md's "App settings" table."""
    section = text.split("## App settings set by the template", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", section, re.MULTILINE))


def test_deploy_doc_lists_exactly_the_deployed_settings(trees: dict[str, Any]) -> None:
    documented = deploy_doc_settings((ROOT / "docs" / "DEPLOY.md").read_text())
    assert documented == set(app_settings(trees[FUNCTION_APP]))
    local = {spec.name for spec in CATALOGUE if spec.scope == "local"}
    assert not documented & local


def test_deploy_doc_check_can_fail(trees: dict[str, Any]) -> None:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    broken = text.replace("| `INGEST_CHUNK_SIZE` |", "| `INGEST_CHUNK` |")
    assert deploy_doc_settings(broken) != set(app_settings(trees[FUNCTION_APP]))


DOCS = (ROOT / "docs" / "RUNBOOK.md", ROOT / "docs" / "DEPLOY.md")


def documented_cli_commands() -> list[tuple[str, list[str]]]:
    """Every concrete `dlt-ingest ...` / `python -m ingest ...` command line in the docs."""
    found: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for match in re.finditer(r"(python -m ingest|dlt-ingest) ([^`\n]+)", text):
            line = match.group(2).split(" #")[0].strip()
            if "..." in line or "[" in line or not line or line.startswith("--help"):
                continue  # a synopsis, not a command
            found.append((f"{doc.name}: {match.group(1)} {line}", shlex.split(line)))
    return found


def _registered_commands() -> set[str]:
    from ingest.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


@pytest.mark.parametrize(
    ("label", "argv"), documented_cli_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_documented_cli_commands_parse(label: str, argv: list[str]) -> None:
    from ingest.cli import build_parser

    assert argv[0] in _registered_commands(), f"{label}: the docs name a command the CLI lacks"
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{label}: rejected by the real CLI parser (exit {exc.code})")


def test_docs_contain_cli_commands() -> None:
    commands = {argv[0] for _, argv in documented_cli_commands()}
    assert {"run", "validate", "plan", "history", "backfill", "secrets"} <= commands


def test_private_networking_leaves_no_public_path(trees: dict[str, Any]) -> None:
    """With both switches closed, nothing the template creates accepts internet traffic; with
    only privateNetworking, the app's HTTPS endpoint (function keys) is the one public path;
    by default all three kinds stay public (the simple deployment)."""
    assert public_paths(deploy(trees, CLOSED)) == []
    assert public_paths(deploy(trees, PRIVATE)) == ["modules/functionapp.bicep:functionApp"]
    assert len(public_paths(deploy(trees))) == 4  # lake, host storage, vault, app


def test_private_zone_names_follow_the_cloud(trees: dict[str, Any]) -> None:
    """Zone names are built from environment(), so sovereign clouds get theirs."""
    variables = trees["modules/network.bicep"]["variables"]
    assert chain(variables["storageSuffix"]["value"]) == "environment().suffixes.storage" or (
        "suffixes" in json.dumps(variables["storageSuffix"]["value"])
    )
    vault = json.dumps(variables["zoneNames"]["value"]["vault"])
    assert "keyvaultDns" in vault and "privatelink.vaultcore." in vault


def test_evaluator_sees_the_default_deployment(trees: dict[str, Any]) -> None:
    deployed = deploy(trees)
    accounts = [(f, n) for f, n, t, _ in deployed if t == ACCOUNT]
    assert sorted(accounts) == [
        ("modules/hoststorage.bicep", "hostStorage"),
        ("modules/lake.bicep", "lake"),
    ]
    (site,) = [c for _, _, t, c in deployed if t == "Microsoft.Web/sites"]
    assert site["properties"]["functionAppConfig"]["runtime"] == {
        "name": "python",
        "version": "3.11",
    }
    (site,) = [
        c for _, _, t, c in deploy(trees, {"pythonVersion": "3.12"}) if t == "Microsoft.Web/sites"
    ]
    assert site["properties"]["functionAppConfig"]["runtime"]["version"] == "3.12"


# --- every check can fail: break one property of the real tree, expect a problem ---------


def _lake_account(t):
    return next(iter(resources(t["modules/lake.bicep"], ACCOUNT).values()))


def _site(t):
    return next(iter(resources(t[FUNCTION_APP], "Microsoft.Web/sites").values()))


def _set_setting(t, name, value):
    settings = cfg(_site(t), "properties", "siteConfig", "appSettings")
    settings[:] = [s for s in settings if s["name"] != name]
    if value is not None:
        settings.append({"name": name, "value": value})


def _lake_ra(t):
    tree = t["modules/lake.bicep"]
    return next(iter(resources(tree, "Microsoft.Authorization/roleAssignments").values()))


MUTATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "blob_contributor_on_account": (
        "role_assignments",
        lambda t: _lake_ra(t)["config"].update(scope="lake"),
    ),
    "extra_role": (
        "role_assignments",
        lambda t: resources(t["modules/keyvault.bicep"])["secretsUser"]["config"]["properties"][
            "roleDefinitionId"
        ]["function"]["parameters"].update(
            resource_name_1="b24988ac-6180-42a0-ab88-20f7382dd24c"  # Contributor
        ),
    ),
    "missing_queue_role": (
        "role_assignments",
        lambda t: t["modules/hoststorage.bicep"]["resources"].pop("queueContributor"),
    ),
    "shared_key_on": (
        "storage_accounts",
        lambda t: _lake_account(t)["config"]["properties"].update(allowSharedKeyAccess=True),
    ),
    "tls_1_0": (
        "storage_accounts",
        lambda t: _lake_account(t)["config"]["properties"].update(minimumTlsVersion="TLS1_0"),
    ),
    "hns_off": (
        "lake",
        lambda t: _lake_account(t)["config"]["properties"].update(isHnsEnabled=False),
    ),
    "container_renamed": (
        "lake",
        lambda t: t["modules/lake.bicep"]["parameters"]["containerName"].update(default="data"),
    ),
    "vault_access_policies": (
        "key_vault",
        lambda t: next(
            iter(resources(t["modules/keyvault.bicep"], "Microsoft.KeyVault/vaults").values())
        )["config"]["properties"].update(enableRbacAuthorization=False),
    ),
    "appi_local_auth": (
        "monitoring",
        lambda t: next(
            iter(resources(t["modules/monitoring.bicep"], "Microsoft.Insights/components").values())
        )["config"]["properties"].update(DisableLocalAuth=False),
    ),
    "key_based_host_storage": (
        "function_app",
        lambda t: _set_setting(t, "AzureWebJobsStorage", "DefaultEndpointsProtocol=https"),
    ),
    "no_host_identity_credential": (
        "function_app",
        lambda t: _set_setting(t, "AzureWebJobsStorage__credential", None),
    ),
    "account_key_in_setting": (
        "no_keys_anywhere",
        lambda t: _set_setting(t, "X", "AccountName=a;AccountKey=${k}"),
    ),
    "list_keys_call": (
        "no_keys_anywhere",
        lambda t: _set_setting(
            t,
            "Y",
            {
                "operator": {
                    "type": "function_accessor",
                    "operands": {"operand_1": "hostStorage", "func_name": "listKeys"},
                }
            },
        ),
    ),
    "secure_output": (
        "outputs",
        lambda t: t[MAIN]["outputs"]["AZURE_CLIENT_ID"]["decorators"].append({"type": "secure"}),
    ),
    "connection_string_output": (
        "outputs",
        lambda t: t["modules/monitoring.bicep"]["outputs"].update(
            conn={
                "decorators": [],
                "type": "string",
                "value": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {
                            "operand_1": "appInsights",
                            "operand_2": "ConnectionString",
                        },
                    }
                },
            }
        ),
    ),
    "app_setting_missing": (
        "catalogue",
        lambda t: _set_setting(t, "AZURE_KEY_VAULT_URL", None),
    ),
    "local_setting_deployed": (
        "catalogue",
        lambda t: _set_setting(t, "AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true"),
    ),
    "default_drift": (
        "catalogue",
        lambda t: t[MAIN]["parameters"]["ingestMaxParallel"].update(default=99),
    ),
    "destination_wrong": (
        "setting_values",
        lambda t: _set_setting(t, "INGEST_DESTINATION", "az://raw-data"),
    ),
    "client_id_wrong": (
        "setting_values",
        lambda t: _set_setting(t, "AZURE_CLIENT_ID", "lakeAccountName"),
    ),
    "alert_without_action_group": (
        "alerts",
        lambda t: resources(t["modules/alerts.bicep"])["tableFailed"]["config"]["properties"][
            "actions"
        ].update(actionGroups=[]),
    ),
    "missing_run_counts_manual_runs": (
        "alerts",
        lambda t: t["modules/alerts.bicep"]["variables"]["runFailedQueryTemplate"].update(
            value=t["modules/alerts.bicep"]["variables"]["runFailedQueryTemplate"]["value"].replace(
                '| where tostring(customDimensions.trigger) == "schedule"', ""
            )
        ),
    ),
    "private_lake_stays_public": (
        "private_networking",
        lambda t: resources(t["modules/lake.bicep"])["lake"]["config"]["properties"][
            "publicNetworkAccess"
        ]["operator"]["operands"].update(true_value="Enabled"),
    ),
    "private_vault_acl_allow": (
        "private_networking",
        lambda t: resources(t["modules/keyvault.bicep"])["vault"]["config"]["properties"][
            "networkAcls"
        ].update(defaultAction="Allow"),
    ),
    "no_dfs_endpoint": (
        "private_networking",
        lambda t: t["modules/lake.bicep"]["modules"].pop("dfsEndpoint"),
    ),
    "queue_endpoint_in_blob_zone": (
        "private_networking",
        lambda t: t["modules/hoststorage.bicep"]["modules"]["queueEndpoint"]["config"]["config"][
            "params"
        ].update(zoneId="blobZoneId"),
    ),
    "app_not_integrated": (
        "private_networking",
        lambda t: resources(t[FUNCTION_APP])["functionApp"]["config"]["properties"].pop(
            "virtualNetworkSubnetId"
        ),
    ),
    "private_on_by_default": (
        "private_networking",
        lambda t: t[MAIN]["parameters"]["privateNetworking"].update(default=True),
    ),
    "app_subnet_not_delegated": (
        "private_networking",
        lambda t: resources(t["modules/network.bicep"])["vnet"]["config"]["properties"]["subnets"][
            0
        ]["properties"].pop("delegations"),
    ),
    "python_312_not_allowed": (
        "function_app",
        lambda t: t[MAIN]["parameters"]["pythonVersion"]["decorators"][-1].update(
            argument=["3.11"]
        ),
    ),
    "workbook_not_shared": (
        "workbook",
        lambda t: resources(t[WORKBOOK])["workbook"]["config"].update(kind="user"),
    ),
    "workbook_on_another_resource": (
        "workbook",
        lambda t: resources(t[WORKBOOK])["workbook"]["config"]["properties"].update(
            sourceId="azure monitor"
        ),
    ),
    "workbook_other_content": (
        "workbook",
        lambda t: t[WORKBOOK]["variables"]["content"]["value"]["function"]["parameters"][
            "original_string"
        ]["function"]["parameters"].update(file_path="../workbooks/other.json"),
    ),
    "workbook_not_deployed": (
        "workbook",
        lambda t: t[MAIN]["modules"].pop("workbook"),
    ),
    "alert_on_wrong_event": (
        "alerts",
        lambda t: t["modules/alerts.bicep"]["variables"]["tableFailedQuery"].update(
            value='customEvents | where name == "TableDone"'
        ),
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_check_fails_on_a_broken_template(mutation: str, trees: dict[str, Any]) -> None:
    check, mutate = MUTATIONS[mutation]
    assert CHECKS[check](trees) == []
    mutate(trees)
    assert CHECKS[check](trees), f"{check} did not notice {mutation}"


def test_catalogue_check_picks_up_new_settings(trees: dict[str, Any]) -> None:
    """A setting added to the catalogue later must be deployed (or the test fails)."""
    spec_type = type(CATALOGUE[0])
    extended = (*CATALOGUE, spec_type("INGEST_SOMETHING_NEW", "1", "new", scope="app"))
    assert check_catalogue(trees, extended) == [
        "app setting INGEST_SOMETHING_NEW (scope app) is not set by the template"
    ]


def test_parameters_example_check_can_fail(trees: dict[str, Any]) -> None:
    example = json.loads(PARAMS_EXAMPLE.read_text())
    example["parameters"]["ingestChunkSize"]["value"] = 5
    example["parameters"]["noSuchParam"] = {"value": 1}
    example["parameters"]["pythonVersion"]["value"] = "3.13"
    problems = check_parameters_example(trees, example)
    assert any("noSuchParam" in p for p in problems)
    assert any("ingestChunkSize" in p for p in problems)
    assert any("pythonVersion" in p for p in problems)


# ----------------------------------------------------------------------------- checkov


def _checkov() -> str:
    for candidate in (
        INFRA_VENV / "bin" / "checkov",
        Path(sys.executable).parent / "checkov",
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("checkov")
    if not found:
        pytest.fail(
            "checkov not found: python3 -m venv .venv-infra && "
            ".venv-infra/bin/pip install -r requirements-infra.txt"
        )
    return found


def _run_checkov(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
    return subprocess.run(
        [
            _checkov(),
            "-d",
            str(directory),
            "--framework",
            "bicep",
            "--compact",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def _summary(output: str) -> dict[str, int]:
    match = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    assert match, output
    return dict(zip(("passed", "failed", "skipped"), map(int, match.groups()), strict=True))


def test_checkov_finds_no_failed_checks() -> None:
    proc = _run_checkov(INFRA)
    summary = _summary(proc.stdout)
    assert summary["failed"] == 0, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["passed"] >= 20, proc.stdout  # it really scanned the templates


def test_checkov_skips_are_justified_inside_resource_bodies() -> None:
    for path in _bicep_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "checkov:skip" not in line:
                continue
            match = re.fullmatch(r"\s*// checkov:skip=(CKV2?_AZURE_\d+): (.{30,})", line)
            assert match, f"{path}:{i + 1}: skip needs an ID and a reason: {line.strip()}"
            # checkov only sees the comment inside the resource body: require it at the top
            # of the body, right under the `resource ... {` line (other skips may precede it).
            j = i - 1
            while j >= 0 and "checkov:skip" in lines[j]:
                j -= 1
            assert j >= 0 and re.match(r"resource \w+ '.+' = \{$", lines[j].strip()), (
                f"{path}:{i + 1}: skip comment is not at the top of a resource body"
            )


def test_checkov_can_fail(tmp_path: Path) -> None:
    (tmp_path / "bad.bicep").write_text(
        "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'stbad'\n"
        "  location: 'eastus'\n"
        "  kind: 'StorageV2'\n"
        "  sku: {\n    name: 'Standard_LRS'\n  }\n"
        "  properties: {\n"
        "    minimumTlsVersion: 'TLS1_0'\n"
        "    supportsHttpsTrafficOnly: false\n"
        "  }\n"
        "}\n"
    )
    proc = _run_checkov(tmp_path)
    assert _summary(proc.stdout)["failed"] > 0, proc.stdout
    assert proc.returncode != 0
