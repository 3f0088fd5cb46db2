"""Prometheus rules: syntax and unit tests (promtool), and the conventions every alert follows."""

import os
import re
import subprocess

import yaml

from conftest import ROOT, RULE_TESTS, RULES, catalog_metrics, load_yaml, metric_names

RUNBOOKS = os.path.join(ROOT, "docs", "runbooks.md")


def test_promtool_accepts_the_rules():
    out = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass():
    out = subprocess.run(["promtool", "test", "rules", RULE_TESTS], capture_output=True, text=True,
                         cwd=os.path.dirname(RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_severity_summary_description_and_runbook(alerts):
    with open(RUNBOOKS) as f:
        headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", f.read(), re.M)}
    assert alerts
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["labels"]["service"] == "devsecops-app", name
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key), f"{name}: {key}"
        anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower(), name
        assert anchor in headings, f"{name}: no section in docs/runbooks.md"
        assert "for" in alert, f"{name}: fires on one evaluation"


def test_every_alert_is_unit_tested_firing_and_silent(alerts):
    tests = load_yaml(RULE_TESTS)["tests"]
    fired, silent, silent_no_traffic = set(), set(), set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
            if group["name"] == "no traffic at all" and not case.get("exp_alerts"):
                silent_no_traffic.add(case["alertname"])
            for exp in case.get("exp_alerts") or []:
                assert exp["exp_labels"]["severity"], case["alertname"]
                assert exp.get("exp_annotations"), f"{case['alertname']}: annotations unchecked"
    names = {a["alert"] for a in alerts}
    assert names - fired == set(), f"never tested firing: {names - fired}"
    assert names - silent == set(), f"never tested silent: {names - silent}"
    assert names - silent_no_traffic == set(), f"not tested without traffic: {names - silent_no_traffic}"


def test_rules_use_only_exported_metrics(rules, recorded_names):
    known = catalog_metrics() | recorded_names
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = {n for n in metric_names(rule["expr"]) if n not in known and not n.startswith("process_")}
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {unknown}"


def test_ratios_never_divide_by_zero(rules):
    # `x / (y > 0)` gives no series without traffic; a bare division would give NaN.
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            for divisor in re.findall(r"/\s*(\(.*)", expr):
                assert "> 0)" in divisor, f"{rule.get('record') or rule.get('alert')}: unguarded division"


def test_prometheus_config_is_valid():
    config = os.path.join(ROOT, "observability", "prometheus", "prometheus.yml")
    out = subprocess.run(["promtool", "check", "config", config], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    with open(config) as f:
        jobs = [s["job_name"] for s in yaml.safe_load(f)["scrape_configs"]]
    assert "devsecops-app" in jobs, "the rules select job=devsecops-app"
