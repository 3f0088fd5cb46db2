"""devsecops reports against official schemas: SARIF 2.1.0 (the OASIS schema in ../shared/schemas) and
well-formed JUnit XML, from a real run of the binary on the real fixtures. Run by scripts/test.sh."""

import json
import re
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


def chromium(*args):
    import shutil
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: scripts/test.sh installs it (apt-get install chromium)"
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--virtual-time-budget=3000", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_dashboard_renders_in_chromium_with_the_numbers_of_the_data(tmp_path):
    reports = run_pipeline(tmp_path)
    # A second run gives the trend two points.
    subprocess.run([BIN, "gate"], cwd=tmp_path, capture_output=True)
    page = reports / "security-dashboard.html"
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html, "no network loads"
    data = json.loads((reports / "devsecops.json").read_text())
    findings = data["findings"]

    dom = chromium("--dump-dom", page.as_uri())
    assert 'data-ready="true"' in dom, "the page script ran without errors"
    for severity in ("critical", "high", "medium", "low", "info"):
        expected = sum(1 for f in findings if f["severity"] == severity and "suppressed_by" not in f)
        assert re.search(rf'id="total-{severity}">{expected}<', dom), severity
    failing = sum(1 for f in findings if f["fails"])
    assert re.search(rf'id="total-failing">{failing}<', dom)
    assert f"{len(findings)} of {len(findings)} shown" in dom
    assert dom.count("<polyline") == 4, "trend lines drawn from the history database"

    critical = sum(1 for f in findings if f["severity"] == "critical")
    filtered = chromium("--dump-dom", page.as_uri() + "#sev=critical")
    assert f"{critical} of {len(findings)} shown" in filtered, "the severity filter works in a real browser"
    new = sum(1 for f in findings if f["state"] == "new" and "suppressed_by" not in f)
    by_state = chromium("--dump-dom", page.as_uri() + "#state=new&cat=iac")
    new_iac = sum(1 for f in findings if f["state"] == "new" and f["category"] == "iac" and "suppressed_by" not in f)
    assert 0 < new_iac < new
    assert f"{new_iac} of {len(findings)} shown" in by_state, "state and category filters combine"

    shot = tmp_path / "dashboard.png"
    chromium("--window-size=1400,2200", f"--screenshot={shot}", page.as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000, "a real screenshot"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 2200)


def cyclonedx_validator():
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    folder = os.path.join(SCHEMAS, "cyclonedx")
    resources = []
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as f:
            schema = json.load(f)
        uri = schema.get("$id") or name
        resources.append((uri, Resource.from_contents(schema, default_specification=DRAFT7)))
    registry = Registry().with_resources(resources)
    with open(os.path.join(folder, "bom-1.5.schema.json")) as f:
        schema = json.load(f)
    return jsonschema.Draft7Validator(schema, registry=registry)


def assert_valid_bom(bom):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in cyclonedx_validator().iter_errors(bom)]
    assert not errors, errors[:5]


def test_cargo_sboms_are_valid_cyclonedx_1_5():
    for args in ([], ["--package", "devsecops-app"]):
        out = subprocess.run([BIN, "sbom", *args], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert_valid_bom(json.loads(out.stdout))


def test_nix_closure_sbom_from_a_real_store_path_is_valid_cyclonedx(tmp_path):
    import shutil
    assert shutil.which("nix-build"), "nix-build is missing: scripts/test.sh installs nix-bin"
    # Root builds without the nixbld build users (Debian's nix-bin does not create them) and without
    # a binary cache (offline).
    build = subprocess.run(["nix-build", "--option", "sandbox", "false", "--option", "build-users-group", "",
                            "--option", "substituters", "", "--no-out-link",
                            os.path.join(ROOT, "pipeline", "tests", "fixtures", "closure.nix")],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    store_path = build.stdout.strip().splitlines()[-1]
    out = subprocess.run([BIN, "sbom", "--nix", store_path], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    bom = json.loads(out.stdout)
    assert_valid_bom(bom)
    assert bom["metadata"]["component"]["name"] == "greeter"
    names = {c["name"]: c for c in bom["components"]}
    props = {p["name"]: p["value"] for p in names["libgreet"]["properties"]}
    assert props["nix:store_path"].startswith("/nix/store/") and props["nix:nar_hash"].startswith("sha256-")
    # A link to the store path (./result, /run/current-system) names the same closure.
    link = tmp_path / "result"
    link.symlink_to(store_path)
    linked = subprocess.run([BIN, "sbom", "--nix", str(link)], cwd=tmp_path, capture_output=True, text=True)
    assert linked.returncode == 0, linked.stderr
    assert json.loads(linked.stdout)["metadata"]["component"]["name"] == "greeter"
    # A broken BOM is rejected by the same validator: the check can fail.
    broken = dict(bom, specVersion="1.5", components=[{"type": "spaceship", "name": "x"}])
    assert list(cyclonedx_validator().iter_errors(broken))
