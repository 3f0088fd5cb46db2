"""Loki and Alloy configuration, checked as far as this machine can without running them."""

import os

import pytest

from alloy import ParseError, attr, blocks, parse
from conftest import OBS, load_yaml

LOKI = os.path.join(OBS, "loki", "loki.yaml")
ALLOY = os.path.join(OBS, "alloy", "config.alloy")

# The only stream labels allowed: bounded by the cluster's namespaces, one app, six levels.
ALLOWED_LABELS = {"namespace", "app", "level"}
# Per-request values that must never become labels.
PER_REQUEST = {"request_id", "path", "status", "route", "method", "event"}


@pytest.fixture(scope="module")
def alloy():
    with open(ALLOY) as f:
        return parse(f.read())


def test_loki_single_binary_with_schema_v13_retention_and_structured_metadata():
    config = load_yaml(LOKI)
    schemas = config["schema_config"]["configs"]
    assert schemas[-1]["schema"] == "v13" and schemas[-1]["store"] == "tsdb"
    assert config["limits_config"]["allow_structured_metadata"] is True
    retention = config["limits_config"]["retention_period"]
    assert retention.endswith("h") and int(retention[:-1]) >= 24 * 7
    assert config["compactor"]["retention_enabled"] is True
    assert config["common"]["replication_factor"] == 1
    assert config["auth_enabled"] is False


def test_alloy_config_parses_and_references_resolve(alloy):
    assert_references_resolve(alloy)


def assert_references_resolve(alloy):
    defined = {f"{b['block']}.{b['label']}" for b in alloy if b.get("label")}
    refs = []

    def walk(value):
        if isinstance(value, dict) and "ref" in value:
            refs.append(value["ref"])
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    def visit(items):
        for item in items:
            if "attr" in item:
                walk(item["value"])
            else:
                visit(item["body"])

    visit(alloy)
    assert refs
    for ref in refs:
        component = ".".join(ref.split(".")[:3])
        assert component in defined, f"{ref} refers to an undefined component"


def test_alloy_rejects_broken_syntax():
    for broken in ['loki.write "x" {', 'a = [1, 2', 'x "y" { z = }', 'a = f(1)']:
        with pytest.raises(ParseError):
            parse(broken)


def test_only_low_cardinality_labels(alloy):
    relabel = blocks(alloy, "discovery.relabel")[0]["body"]
    targets = {attr(r["body"], "target_label") for r in blocks(relabel, "rule")} - {None}
    process = blocks(alloy, "loki.process")[0]["body"]
    labels = set()
    for stage in blocks(process, "stage.labels"):
        labels |= set(attr(stage["body"], "values"))
    assert targets | labels <= ALLOWED_LABELS, targets | labels
    assert "level" in labels and {"namespace", "app"} <= targets
    assert not (targets | labels) & PER_REQUEST


def test_request_ids_and_paths_go_to_structured_metadata(alloy):
    process = blocks(alloy, "loki.process")[0]["body"]
    extracted = set(attr(blocks(process, "stage.json")[0]["body"], "expressions"))
    metadata = set(attr(blocks(process, "stage.structured_metadata")[0]["body"], "values"))
    assert {"request_id", "path"} <= metadata
    assert metadata <= extracted, "structured metadata needs the JSON stage to extract it"
    timestamp = blocks(process, "stage.timestamp")[0]["body"]
    assert attr(timestamp, "source") == "timestamp" and attr(timestamp, "format") == "RFC3339Nano"
    write = blocks(alloy, "loki.write")[0]["body"]
    assert attr(blocks(write, "endpoint")[0]["body"], "url").endswith("/loki/api/v1/push")


def alloy_labels_and_metadata():
    with open(ALLOY) as f:
        config = parse(f.read())
    relabel = blocks(config, "discovery.relabel")[0]["body"]
    process = blocks(config, "loki.process")[0]["body"]
    labels = {attr(r["body"], "target_label") for r in blocks(relabel, "rule")} - {None}
    for stage in blocks(process, "stage.labels"):
        labels |= set(attr(stage["body"], "values"))
    metadata = set(attr(blocks(process, "stage.structured_metadata")[0]["body"], "values"))
    return labels, metadata


def test_compose_alloy_processes_lines_like_the_kubernetes_one():
    with open(os.path.join(OBS, "alloy", "compose.alloy")) as f:
        compose = parse(f.read())
    with open(ALLOY) as f:
        kubernetes = parse(f.read())
    assert blocks(compose, "loki.process")[0]["body"] == blocks(kubernetes, "loki.process")[0]["body"], \
        "compose.alloy and config.alloy must parse the service's logs the same way"


APPLIANCE_ALLOY = os.path.join(OBS, "alloy", "appliance.alloy")


def labelled(config, block, label):
    found = [b for b in blocks(config, block) if b.get("label") == label]
    assert len(found) == 1, f"one {block} {label!r} expected"
    return found[0]["body"]


@pytest.fixture(scope="module")
def appliance_alloy():
    with open(APPLIANCE_ALLOY) as f:
        return parse(f.read())


def test_appliance_alloy_parses_and_references_resolve(appliance_alloy):
    assert_references_resolve(appliance_alloy)


def test_appliance_alloy_processes_lines_like_the_kubernetes_one(alloy, appliance_alloy):
    assert labelled(appliance_alloy, "loki.process", "devsecops_app") == \
        labelled(alloy, "loki.process", "devsecops_app"), \
        "appliance.alloy and config.alloy must parse the service's logs the same way"
    # The kubelet's CRI framing is removed before the JSON stages see the line.
    cri = labelled(appliance_alloy, "loki.process", "cri")
    assert blocks(cri, "stage.cri")
    assert attr(cri, "forward_to") == [{"ref": "loki.process.devsecops_app.receiver"}]


def test_appliance_alloy_finds_the_service_pods_and_labels_their_namespace(appliance_alloy):
    import fnmatch
    import re

    match = labelled(appliance_alloy, "local.file_match", "devsecops_app")
    pattern = attr(match, "path_targets")[0]["__path__"]
    pod_log = "/var/log/pods/devsecops_devsecops-app-6d9f7c5b8-x2x7q_0b6a1c2e/devsecops-app/0.log"
    assert fnmatch.fnmatch(pod_log, pattern)
    assert not fnmatch.fnmatch("/var/log/pods/kube-system_traefik-1_9a/traefik/0.log", pattern)
    relabel = labelled(appliance_alloy, "discovery.relabel", "devsecops_app")
    rules = [r["body"] for r in blocks(relabel, "rule")]
    labels = {attr(r, "target_label") for r in rules}
    assert labels <= ALLOWED_LABELS
    namespace_rule = next(r for r in rules if attr(r, "target_label") == "namespace")
    assert re.fullmatch(attr(namespace_rule, "regex"), pod_log).group(1) == "devsecops"


def test_appliance_alloy_writes_to_the_local_loki(appliance_alloy):
    port = load_yaml(LOKI)["server"]["http_listen_port"]
    write = labelled(appliance_alloy, "loki.write", "default")
    assert attr(blocks(write, "endpoint")[0]["body"], "url") == f"http://127.0.0.1:{port}/loki/api/v1/push"


# Labels each source adds to every line by itself, before any stage runs (Grafana Alloy's component
# reference: loki.source.kubernetes sets `job` (namespace/container) and `instance` (one per pod),
# loki.source.file sets `filename`, stage.cri sets `stream`; loki.source.docker adds none beyond the
# relabelled targets).
SOURCE_LABELS = {
    "loki.source.kubernetes": {"job", "instance"},
    "loki.source.file": {"filename"},
    "loki.source.docker": set(),
}
STAGE_LABELS = {"stage.cri": {"stream"}}


def final_labels(config):
    """The stream labels a line ends with: relabelled target labels and what the source adds, then
    each loki.process in the chain: stage labels added, label_drop removed."""
    labels = set()
    for relabel in blocks(config, "discovery.relabel"):
        labels |= {attr(r["body"], "target_label") for r in blocks(relabel["body"], "rule")} - {None}
    sources = [b for b in config if b.get("block", "").startswith("loki.source.")]
    assert len(sources) == 1, [b["block"] for b in sources]
    assert sources[0]["block"] in SOURCE_LABELS, f"labels of {sources[0]['block']} are not listed here"
    labels |= SOURCE_LABELS[sources[0]["block"]]
    for process in blocks(config, "loki.process"):
        for stage in process["body"]:
            labels |= STAGE_LABELS.get(stage.get("block"), set())
            if stage.get("block") == "stage.labels":
                labels |= set(attr(stage["body"], "values"))
    for process in blocks(config, "loki.process"):
        for stage in blocks(process["body"], "stage.label_drop"):
            labels -= set(attr(stage["body"], "values"))
    return labels


@pytest.mark.parametrize("name", ["config.alloy", "appliance.alloy", "compose.alloy"])
def test_lines_reach_loki_with_the_documented_labels_only(name):
    with open(os.path.join(OBS, "alloy", name)) as f:
        config = parse(f.read())
    labels = final_labels(config)
    assert labels == ALLOWED_LABELS, f"{name}: {sorted(labels)}"
