"""Shared paths and helpers for the observability checks (run by scripts/test.sh through pytest)."""

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBS = os.path.join(ROOT, "observability")
RULES = os.path.join(OBS, "prometheus", "rules", "devsecops-app.rules.yml")
RULE_TESTS = os.path.join(OBS, "prometheus", "tests", "devsecops-app.test.yml")
DASHBOARDS = os.path.join(OBS, "grafana", "dashboards")
SCHEMAS = os.environ.get("DEVSECOPS_SCHEMAS", os.path.join(os.path.dirname(ROOT), "shared", "schemas"))


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="session")
def rules():
    return load_yaml(RULES)


@pytest.fixture(scope="session")
def alerts(rules):
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="session")
def recorded_names(rules):
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def catalog_metrics():
    """Metric names the service exports (docs/metrics.md, generated from app/src/metrics.rs) and the
    ones other components export (observability/README.md, "Metrics from elsewhere")."""
    names = set()
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        for name, kind in re.findall(r"^\| `([^`]+)` \| (\w+) \|", f.read(), re.M):
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_count", name + "_sum"})
    with open(os.path.join(OBS, "README.md")) as f:
        names.update(re.findall(r"^\| `([a-z_:]+)` \|", f.read(), re.M))
    return names


PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "stdvar", "group",
    "count_values", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset",
}


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = m.group(0)
        following = text[m.end():].lstrip()[:1]
        if following == "(" or word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        if text[max(0, m.start() - 1)] == "$":
            continue
        names.add(word)
    return names
