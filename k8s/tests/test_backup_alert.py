"""The backup-age threshold in the chart's PrometheusRule: metrics.prometheusRule.backupMaxAgeSeconds
becomes the recording rule devsecops_app:backup_max_age_seconds and nothing else changes, the
default is the rules file's own value, out-of-range values are refused, and promtool shows the
alert following the rendered threshold (helm and promtool on PATH)."""

import copy
import os
import subprocess

import pytest
import yaml

from renders import VALUE_SETS, documents, helm_template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "observability", "prometheus", "rules", "devsecops-app.rules.yml")
RECORD = "devsecops_app:backup_max_age_seconds"
WEEKLY = 7 * 24 * 3600 + 2 * 3600


def rendered_groups(*args):
    out = helm_template(VALUE_SETS["postgres-external-monitoring"] + list(args))
    assert out.returncode == 0, out.stderr
    return next(d for d in documents(out.stdout) if d["kind"] == "PrometheusRule")["spec"]["groups"]


def thresholds(groups):
    return [r["expr"] for g in groups for r in g["rules"] if r.get("record") == RECORD]


def test_the_default_is_the_rules_files_value():
    with open(RULES) as f:
        on_disk = yaml.safe_load(f)["groups"]
    with open(os.path.join(ROOT, "k8s", "chart", "values.yaml")) as f:
        default = yaml.safe_load(f)["metrics"]["prometheusRule"]["backupMaxAgeSeconds"]
    assert thresholds(on_disk) == [f"vector({default})"]
    assert rendered_groups() == on_disk


def test_the_value_sets_the_threshold_and_nothing_else():
    with open(RULES) as f:
        expected = yaml.safe_load(f)["groups"]
    groups = rendered_groups("--set", f"metrics.prometheusRule.backupMaxAgeSeconds={WEEKLY}")
    assert thresholds(groups) == [f"vector({WEEKLY})"]
    changed = copy.deepcopy(expected)
    for group in changed:
        for rule in group["rules"]:
            if rule.get("record") == RECORD:
                rule["expr"] = f"vector({WEEKLY})"
    assert groups == changed


@pytest.mark.parametrize("value", ["0", "600", "3196801", "1d", "-93600"])
def test_values_outside_the_schema_are_refused(value):
    out = helm_template(VALUE_SETS["postgres-external-monitoring"] +
                        ["--set", f"metrics.prometheusRule.backupMaxAgeSeconds={value}"])
    assert out.returncode != 0 and "backupMaxAgeSeconds" in out.stderr, out.stderr


PROMTOOL_TEST = """
rule_files: [rules.yml]
evaluation_interval: 5m
tests:
  # A SQLite service whose newest backup was taken at 0 s (time 1 s: 0 means none).
  - interval: 4m  # within the 5-minute lookback: the series never goes stale
    input_series:
      - series: 'app_backup_last_success_timestamp_seconds{job="devsecops-app", namespace="shop", instance="a:9464"}'
        values: '1x3000'
    alert_rule_test:
%s
"""


def firing(at, age):
    return (f"      - eval_time: {at}\n        alertname: DevsecopsAppBackupTooOld\n        exp_alerts:\n"
            "          - exp_labels: {severity: warning, service: devsecops-app, job: devsecops-app, namespace: shop, last_backup: too_old}\n"
            "            exp_annotations:\n"
            "              summary: The newest database backup is older than the schedule allows\n"
            f"              description: The newest backup of the devsecops-app database in shop was taken {age} ago.\n"
            "              runbook_url: https://github.com/devsecops-platform/devsecops/blob/main/docs/runbooks.md#devsecopsappbackuptooold\n")


def quiet(at):
    return f"      - eval_time: {at}\n        alertname: DevsecopsAppBackupTooOld\n"


@pytest.mark.parametrize("args, cases", [
    ([], [quiet("26h"), firing("27h", "1d 2h 59m 59s")]),
    (["--set", f"metrics.prometheusRule.backupMaxAgeSeconds={WEEKLY}"], [quiet("27h"), quiet("170h"), firing("171h", "7d 2h 59m 59s")]),
], ids=["default-26h", "weekly-170h"])
def test_the_alert_follows_the_rendered_threshold(tmp_path, args, cases):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rendered_groups(*args)}))
    (tmp_path / "test.yml").write_text(PROMTOOL_TEST % "".join(cases))
    out = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
