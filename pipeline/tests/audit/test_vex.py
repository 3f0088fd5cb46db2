"""VEX out and in: `devsecops vex` writes OpenVEX 0.2.0 and CycloneDX 1.6 (validated against the
official schemas in ../shared/schemas) from the suppressions of dependency findings, an expired
suppression becomes under_investigation; `ingest --tool openvex|cyclonedx-vex` applies statements
as suppressions with their author and timestamp; writing VEX and ingesting it into a fresh run
gives the same suppressed set."""

import json
import os

import jsonschema
import pytest

from conftest import ADVISORY_DB, FIXTURES, SCHEMAS, run
from test_reports import cyclonedx_validator

SUPPRESSIONS = """
[[suppression]]
rule = "RUSTSEC-2021-0003"
justification = "insert_many is never called: the appliance only pushes into its SmallVecs"
owner = "platform-team"
expires = 2099-01-31
vex_justification = "vulnerable_code_not_in_execute_path"

[[suppression]]
rule = "RUSTSEC-2020-0071"
justification = "the time 0.1 local-time path is never reached in our binaries"
owner = "runtime-team"
expires = 2021-01-31
vex_justification = "vulnerable_code_cannot_be_controlled_by_adversary"
"""


def findings_run(folder, closure, suppressions=SUPPRESSIONS):
    """A run with the workspace's cargo-audit report and the closure's audit, and suppressions."""
    folder.mkdir(exist_ok=True)
    run(["ingest", "--tool", "cargo-audit", os.path.join(FIXTURES, "real", "cargo-audit.json")], cwd=folder)
    run(["ingest", "--tool", "hadolint", os.path.join(FIXTURES, "real", "hadolint.json")], cwd=folder)
    run(["audit", "--db", ADVISORY_DB, "--nix", closure[0]], cwd=folder)
    if suppressions is not None:
        (folder / ".devsecops").mkdir(exist_ok=True)
        (folder / ".devsecops" / "suppressions.toml").write_text(suppressions)
    return folder


def assessed(folder):
    run(["report", "--format", "json,sarif,markdown"], cwd=folder)
    report = json.loads((folder / "reports" / "devsecops.json").read_text())
    return report, {f["fingerprint"]: f for f in report["findings"]}


def suppressed(findings):
    return {fp for fp, f in findings.items() if "suppressed_by" in f}


def openvex_validator():
    with open(os.path.join(SCHEMAS, "openvex", "openvex_json_schema.json")) as f:
        return jsonschema.Draft202012Validator(json.load(f))


def assert_valid(validator, document):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors[:5]


@pytest.fixture(scope="module")
def written(tmp_path_factory, closure):
    folder = findings_run(tmp_path_factory.mktemp("out"), closure)
    for fmt in ("openvex", "cyclonedx"):
        run(["vex", "--format", fmt, "--output", f"vex.{fmt}.json"], cwd=folder)
    return folder


def test_openvex_out_is_valid_and_states_each_decision_with_owner_and_expiry(written):
    doc = json.loads((written / "vex.openvex.json").read_text())
    assert_valid(openvex_validator(), doc)
    assert doc["@context"] == "https://openvex.dev/ns/v0.2.0" and doc["author"] == "platform-team, runtime-team"
    by_id = {s["vulnerability"]["name"]: s for s in doc["statements"]}
    assert set(by_id) == {"RUSTSEC-2021-0003", "RUSTSEC-2020-0071"}, "only dependency findings, each once"
    smallvec = by_id["RUSTSEC-2021-0003"]
    assert smallvec["status"] == "not_affected"
    assert smallvec["justification"] == "vulnerable_code_not_in_execute_path"
    assert smallvec["impact_statement"].startswith("insert_many is never called")
    assert "CVE-2021-25900" in smallvec["vulnerability"]["aliases"]
    # The workspace's 0.6.13 and the appliance binary's 1.6.0: one finding, both packages.
    assert {p["identifiers"]["purl"] for p in smallvec["products"]} == {"pkg:cargo/smallvec@0.6.13", "pkg:cargo/smallvec@1.6.0"}
    assert "platform-team" in smallvec["status_notes"] and "2099-01-31" in smallvec["status_notes"]
    # Expired: no longer not_affected, and no justification claimed.
    time = by_id["RUSTSEC-2020-0071"]
    assert time["status"] == "under_investigation" and "justification" not in time
    assert "expired on 2021-01-31" in time["status_notes"]
    # The schema check can fail: a not_affected statement without a justification is invalid.
    broken = dict(doc, statements=[{k: v for k, v in smallvec.items() if k not in ("justification", "impact_statement")}])
    assert list(openvex_validator().iter_errors(broken))


def test_cyclonedx_vex_out_is_valid_1_6_with_analysis_and_properties(written):
    doc = json.loads((written / "vex.cyclonedx.json").read_text())
    assert_valid(cyclonedx_validator("1.6"), doc)
    assert doc["specVersion"] == "1.6" and doc["metadata"]["authors"] == [{"name": "platform-team, runtime-team"}]
    refs = {c["bom-ref"] for c in doc["components"]}
    by_id = {v["id"]: v for v in doc["vulnerabilities"]}
    smallvec = by_id["RUSTSEC-2021-0003"]
    assert smallvec["analysis"]["state"] == "not_affected" and smallvec["analysis"]["justification"] == "code_not_reachable"
    assert {a["ref"] for a in smallvec["affects"]} <= refs, "every affects ref is a component of the document"
    props = {p["name"]: p["value"] for p in smallvec["properties"]}
    assert props == {"devsecops:vex-justification": "vulnerable_code_not_in_execute_path",
                     "devsecops:owner": "platform-team", "devsecops:expires": "2099-01-31"}
    assert by_id["RUSTSEC-2020-0071"]["analysis"]["state"] == "in_triage"
    assert smallvec["source"]["name"] == "RustSec" and {"id": "CVE-2021-25900", "source": {"name": "NVD", "url": "https://nvd.nist.gov/vuln/detail/CVE-2021-25900"}} in smallvec["references"]
    broken = dict(doc, vulnerabilities=[dict(smallvec, analysis={"state": "maybe"})])
    assert list(cyclonedx_validator("1.6").iter_errors(broken))


@pytest.mark.parametrize("fmt,tool", [("openvex", "openvex"), ("cyclonedx", "cyclonedx-vex")])
def test_vex_round_trip_gives_the_same_suppressed_set(tmp_path, written, closure, fmt, tool):
    _, before = assessed(written)
    fresh = findings_run(tmp_path / "fresh", closure, suppressions=None)
    _, unsuppressed = assessed(fresh)
    assert not suppressed(unsuppressed)
    out = run(["ingest", "--tool", tool, str(written / f"vex.{fmt}.json")], cwd=fresh)
    assert "ingested 2 VEX statement(s)" in out.stdout, out.stdout
    report, after = assessed(fresh)
    assert suppressed(after) == suppressed(before) and len(suppressed(after)) == 1
    [fp] = suppressed(after)
    # The reports say the VEX statement decided it, and whose statement it was.
    decision = after[fp]["vex"]
    assert decision["status"] == "not_affected" and decision["author"] == "platform-team, runtime-team"
    assert decision["accepts"] and "stated by platform-team, runtime-team" in after[fp]["suppression_justification"]
    [listed] = [s for s in report["suppressions"] if s["matches"].startswith("VEX RUSTSEC-2021-0003")]
    assert listed["owner"] == "platform-team, runtime-team" and listed["matched"] == 1
    sarif = json.loads((fresh / "reports" / "devsecops.sarif").read_text())
    justifications = [s["justification"] for r in sarif["runs"][0]["results"] for s in r.get("suppressions", [])]
    assert any("VEX RUSTSEC-2021-0003 not_affected" in j for j in justifications), justifications
    # The expired acceptance came back as under_investigation: it decides, and accepts nothing.
    time = [f for f in after.values() if f["rule"] == "RUSTSEC-2020-0071"][0]
    assert time["vex"]["status"] == "under_investigation" and "suppressed_by" not in time


def test_vendor_statements_affected_never_suppresses_fixed_does_the_newest_decides(tmp_path, closure):
    folder = findings_run(tmp_path / "vendor", closure, suppressions=None)
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vendor.example/vex/1", "author": "Vendor Inc.",
        "timestamp": "2026-10-01T00:00:00Z", "version": 1,
        "statements": [
            {"vulnerability": {"name": "CVE-2021-25900"}, "products": [{"@id": "pkg:cargo/smallvec"}],
             "status": "not_affected", "justification": "vulnerable_code_not_present", "timestamp": "2026-09-01T00:00:00Z"},
            {"vulnerability": {"name": "CVE-2021-25900"}, "products": [{"@id": "pkg:cargo/smallvec"}],
             "status": "affected", "action_statement": "upgrade smallvec to 1.6.1"},
            {"vulnerability": {"name": "RUSTSEC-2020-0071"},
             "products": [{"@id": "pkg:oci/appliance", "subcomponents": [{"@id": "pkg:cargo/time@0.1.43"}]}],
             "status": "fixed"},
        ],
    }
    assert_valid(openvex_validator(), doc)
    (folder / "vendor.json").write_text(json.dumps(doc))
    run(["ingest", "--tool", "openvex", "vendor.json"], cwd=folder)
    _, findings = assessed(folder)
    by_rule = {f["rule"]: f for f in findings.values()}
    smallvec, time = by_rule["RUSTSEC-2021-0003"], by_rule["RUSTSEC-2020-0071"]
    assert smallvec["vex"]["status"] == "affected" and "suppressed_by" not in smallvec, "the newer statement wins"
    assert smallvec["fails"]
    assert time["vex"]["status"] == "fixed" and time["vex"]["author"] == "Vendor Inc." and "suppressed_by" in time
    assert time["vex"]["timestamp"] == "2026-10-01T00:00:00Z"
    summary = (folder / "reports" / "devsecops-summary.md").read_text().replace("\\", "")
    assert "Decided by VEX statements (2)" in summary
    assert "RUSTSEC-2020-0071`` smallvec" not in summary and "fixed, stated by Vendor Inc. on 2026-10-01T00:00:00Z" in summary, summary


def test_an_expired_cyclonedx_statement_accepts_nothing_and_is_reported(tmp_path, written, closure):
    doc = json.loads((written / "vex.cyclonedx.json").read_text())
    for v in doc["vulnerabilities"]:
        v["properties"] = [p if p["name"] != "devsecops:expires" else dict(p, value="2026-01-01") for p in v["properties"]]
    folder = findings_run(tmp_path / "expired", closure, suppressions=None)
    (folder / "late.cdx.json").write_text(json.dumps(doc))
    run(["ingest", "--tool", "cyclonedx-vex", "late.cdx.json"], cwd=folder)
    report, findings = assessed(folder)
    assert not suppressed(findings)
    assert any(s["expired"] and s["matches"].startswith("VEX") for s in report["suppressions"])


def test_a_suppression_of_a_dependency_without_vex_justification_is_an_error(tmp_path, closure):
    folder = findings_run(tmp_path / "missing", closure,
                          suppressions=SUPPRESSIONS.replace('vex_justification = "vulnerable_code_not_in_execute_path"\n', ""))
    out = run(["vex"], cwd=folder, check=False)
    assert out.returncode == 2 and "suppression(s) #1" in out.stderr and "vex_justification" in out.stderr, out.stderr
    # Nothing accepted: no document that would claim nothing, but a clear error.
    (folder / ".devsecops" / "suppressions.toml").write_text("")
    out = run(["vex"], cwd=folder, check=False)
    assert out.returncode == 2 and "no VEX statement to write" in out.stderr, out.stderr
    bad = SUPPRESSIONS.replace("vulnerable_code_not_in_execute_path", "we_checked_it")
    (folder / ".devsecops" / "suppressions.toml").write_text(bad)
    out = run(["vex"], cwd=folder, check=False)
    assert out.returncode == 2 and "we_checked_it" in out.stderr, out.stderr
