"""devsecops reports against official schemas: SARIF 2.1.0 (the OASIS schema in ../shared/schemas) and
well-formed JUnit XML, from a real run of the binary on the real fixtures. Run by scripts/test.sh."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DEVSECOPS_BIN", os.path.join(ROOT, "target", "debug", "devsecops"))
FIXTURES = os.path.join(ROOT, "pipeline", "tests", "fixtures", "real")
SCHEMAS = os.environ.get("DEVSECOPS_SCHEMAS", os.path.join(os.path.dirname(ROOT), "shared", "schemas"))


def run_pipeline(tmp_path):
    for tool, name in [("cargo-audit", "cargo-audit.json"), ("cargo-deny", "cargo-deny.ndjson"),
                       ("clippy", "clippy.ndjson"), ("gitleaks", "gitleaks.json"), ("hadolint", "hadolint.json"),
                       ("checkov", "checkov.json"), ("trivy", "trivy-config.json"), ("trivy", "trivy-secret.json"),
                       ("sarif", "trivy-config.sarif")]:
        out = subprocess.run([BIN, "ingest", "--tool", tool, os.path.join(FIXTURES, name)], cwd=tmp_path,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    out = subprocess.run([BIN, "gate"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    return tmp_path / "reports"


def test_sarif_is_valid_sarif_2_1_0_for_code_scanning(tmp_path):
    reports = run_pipeline(tmp_path)
    sarif = json.loads((reports / "devsecops.sarif").read_text())
    with open(os.path.join(SCHEMAS, "sarif", "sarif-schema-2.1.0.json")) as f:
        schema = json.load(f)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(sarif)]
    assert not errors, errors[:5]
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["partialFingerprints"]["devsecops/v1"]
        assert result["baselineState"] in {"new", "unchanged"}
        assert float(result["properties"]["security-severity"]) >= 0
    for rule in rules:
        assert rule["properties"]["security-severity"]
    # The same advisory from cargo-audit and cargo-deny is one result listing both tools.
    smallvec = [r for r in run["results"] if r["ruleId"] == "RUSTSEC-2021-0003"]
    assert len(smallvec) == 1 and smallvec[0]["properties"]["tools"] == ["cargo-audit", "cargo-deny"]
    # Secrets never reach a report.
    assert "ghp_" not in (reports / "devsecops.sarif").read_text()


def test_junit_is_well_formed_and_counts_match(tmp_path):
    reports = run_pipeline(tmp_path)
    tree = ET.parse(reports / "devsecops-junit.xml")
    root = tree.getroot()
    assert root.tag == "testsuites"
    cases = root.findall(".//testcase")
    failures = root.findall(".//failure")
    assert int(root.get("tests")) == len(cases)
    assert int(root.get("failures")) == len(failures) > 0
    summary = json.loads((reports / "devsecops.json").read_text())
    assert len(summary["findings"]) == len(cases)
    assert sum(1 for f in summary["findings"] if f["fails"]) == len(failures)
