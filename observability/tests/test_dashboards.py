"""Grafana dashboards: generated from dashboards.py, valid against Grafana's dashboard schema,
provisioned from files, and written so they work on any Prometheus/Loki datasource."""

import glob
import importlib.util
import json
import os
import re

import jsonschema
import pytest

from conftest import DASHBOARDS, OBS, SCHEMAS, catalog_metrics, load_yaml, metric_names
from test_logs import alloy_labels_and_metadata


def all_dashboards():
    return {os.path.basename(p): json.load(open(p)) for p in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))}


def targets(dashboard, kind):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == kind:
                yield panel, target["expr"]


def test_json_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("dashboards", os.path.join(OBS, "grafana", "dashboards.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.render()
    on_disk = {os.path.basename(p): open(p).read() for p in glob.glob(os.path.join(DASHBOARDS, "*.json"))}
    assert on_disk == generated, "dashboards are stale: run python3 observability/grafana/dashboards.py"


def test_valid_against_the_grafana_dashboard_schema():
    with open(os.path.join(SCHEMAS, "grafana", "dashboard.jsonschema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    for name, dashboard in all_dashboards().items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(dashboard)]
        assert not errors, f"{name}: {errors[:5]}"


def test_the_three_dashboards_exist_with_unique_uids():
    boards = all_dashboards()
    uids = [d["uid"] for d in boards.values()]
    assert len(uids) == len(set(uids))
    assert set(uids) == {"devsecops-app-red", "devsecops-app-logs", "devsecops-app-security"}
    for d in boards.values():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]


def test_every_panel_has_a_unit_and_a_datasource_variable():
    for name, d in all_dashboards().items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        for panel in d["panels"]:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: {panel['title']} has no unit"
            uid = panel["datasource"]["uid"]
            assert uid.startswith("${") and uid[2:-1] in variables, f"{name}: {panel['title']} pins a datasource"
            assert variables[uid[2:-1]]["type"] == "datasource"
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]


def test_promql_uses_rate_interval_and_known_metrics():
    known = catalog_metrics() | {r["record"] for g in load_yaml(
        os.path.join(OBS, "prometheus", "rules", "devsecops-app.rules.yml"))["groups"] for r in g["rules"] if "record" in r}
    for name, d in all_dashboards().items():
        for panel, expr in targets(d, "prometheus"):
            for window in re.findall(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", f"{name}: {panel['title']}: [{window}]"
            unknown = {n for n in metric_names(expr) if n not in known and not n.startswith("process_")}
            assert not unknown, f"{name}: {panel['title']}: unknown metrics {unknown}"
            assert 'job="$job"' in expr or "devsecops_findings" in expr, f"{name}: {panel['title']}: not scoped to $job"


def balanced(expr):
    pairs, stack, quoted = {")": "(", "]": "[", "}": "{"}, [], False
    for i, ch in enumerate(expr):
        if ch == '"' and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([{":
            stack.append(ch)
        elif not quoted and ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and not quoted


LOGQL_STAGES = {"json", "logfmt", "line_format", "label_format", "unwrap", "drop", "keep", "pattern", "regexp",
                "decolorize"}


def test_logql_selects_labels_alloy_sets_and_pipelines_are_well_formed():
    labels, metadata = alloy_labels_and_metadata()
    checked = 0
    for name, d in all_dashboards().items():
        for panel, expr in targets(d, "loki"):
            checked += 1
            where = f"{name}: {panel['title']}"
            assert balanced(expr), f"{where}: unbalanced brackets or quotes"
            selectors = re.findall(r"\{([^{}]*)\}", expr)
            assert selectors, f"{where}: no stream selector"
            for selector in selectors:
                names = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"', selector)
                assert names, f"{where}: empty selector"
                assert set(names) <= labels, f"{where}: selects {set(names) - labels}, not labels Alloy sets"
            unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
            # Before `| json`, label filters may only use structured metadata or labels.
            for stream_part in re.findall(r"\{[^{}]*\}([^\[]*)", unquoted):
                before_parser = re.split(r"\|\s*(?:json|logfmt)\b", stream_part)[0]
                for field in re.findall(r"\|\s*([a-z_]+)\s*(?:=~|!~|!=|=|>=|<=|>|<)", before_parser):
                    assert field in metadata | labels, f"{where}: filters on {field} before parsing"
            for stage in re.findall(r"\|\s*([a-z_]+)\b(?!\s*(?:=|!|>|<))", unquoted):
                assert stage in LOGQL_STAGES, f"{where}: unknown pipeline stage {stage}"
            if "unwrap" in expr or "count_over_time" in expr or "rate(" in expr:
                assert re.search(r"\[\$__(auto|range|interval)\]", expr), f"{where}: fixed range"
    assert checked >= 5


def test_provisioning_points_at_the_dashboards_and_both_datasources():
    datasources = load_yaml(os.path.join(OBS, "grafana", "provisioning", "datasources", "datasources.yaml"))
    kinds = {d["type"] for d in datasources["datasources"]}
    assert kinds == {"prometheus", "loki"}
    providers = load_yaml(os.path.join(OBS, "grafana", "provisioning", "dashboards", "dashboards.yaml"))
    provider = providers["providers"][0]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["path"]


@pytest.mark.parametrize("name", ["devsecops-app-red.json", "devsecops-app-logs.json", "devsecops-app-security.json"])
def test_dashboards_are_not_editable_exports(name):
    d = all_dashboards()[name]
    assert "__inputs" not in d and "__requires" not in d
    assert d["editable"] is False


def test_kubernetes_configmaps_carry_every_dashboard_with_the_sidecar_label():
    import shutil
    import subprocess

    import yaml

    assert shutil.which("kubectl"), "kubectl is missing: scripts/test.sh installs it"
    out = subprocess.run(["kubectl", "kustomize", os.path.join(OBS, "grafana")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    maps = [d for d in yaml.safe_load_all(out.stdout) if d]
    shipped = {}
    for cm in maps:
        assert cm["kind"] == "ConfigMap"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped.update(cm["data"])
    assert shipped.keys() == all_dashboards().keys(), "a dashboard is not shipped to Kubernetes"
    for name, text in shipped.items():
        assert json.loads(text) == all_dashboards()[name]
