"""What each consumer of the security reports is given, from a real run of the devsecops binary:
warnings-ng (Jenkins) and SonarQube import every SARIF result, suppressed or not (analysis-model's
SarifAdapter keeps what violations-lib only flags as suppressed; SonarQube's RunMapper maps every
result), so they get reports/devsecops-open.sarif, which carries no accepted finding; GitHub code
scanning honours suppressions and gets the full reports/devsecops.sarif. And the dashboard as
Jenkins publishes it (htmlpublisher copies reportDir's files matching `includes`) and serves it
(the CSP of core's DirectoryBrowserSupport), in Chromium."""

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import tomllib
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
FIXTURES = ROOT / "pipeline" / "tests" / "fixtures" / "real"
JENKINSFILE = ROOT / "jenkins" / "Jenkinsfile"
# jenkinsci/jenkins core/src/main/java/hudson/model/DirectoryBrowserSupport.java DEFAULT_CSP_VALUE,
# and the value before allow-same-origin was added (still what many installations configure).
JENKINS_CSPS = ["sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';",
                "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"]


def devsecops(cwd, *args, ok=(0,)):
    out = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode in ok, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A project with new, baselined and suppressed findings, through ingest, baseline and gate."""
    assert os.access(BIN, os.X_OK), f"{BIN} missing: cargo build -p devsecops (or set DEVSECOPS_BIN)"
    project = tmp_path_factory.mktemp("project")
    for tool, name in [("cargo-audit", "cargo-audit.json"), ("hadolint", "hadolint.json"), ("checkov", "checkov.json")]:
        devsecops(project, "ingest", "--tool", tool, str(FIXTURES / name))
    devsecops(project, "baseline")
    for tool, name in [("cargo-deny", "cargo-deny.ndjson"), ("trivy", "trivy-config.json"), ("clippy", "clippy.ndjson")]:
        devsecops(project, "ingest", "--tool", tool, str(FIXTURES / name))
    findings = json.loads((project / ".devsecops" / "findings.json").read_text())
    rule = sorted({f["rule"] for f in (findings["findings"] if isinstance(findings, dict) else findings)})[0]
    (project / ".devsecops" / "suppressions.toml").write_text(
        f'[[suppression]]\nrule = "{rule}"\njustification = "accepted for this test"\n'
        'owner = "platform-team"\nexpires = 2099-12-31\n')
    devsecops(project, "gate", ok=(0, 1))
    return project / "reports"


def results(path):
    sarif = json.loads(path.read_text())
    return [r for run in sarif["runs"] for r in run["results"]]


def accepted(result):
    return bool(result.get("suppressions")) or result.get("baselineState") == "unchanged"


def test_the_full_sarif_marks_accepted_findings_and_the_open_one_leaves_them_out(reports):
    full, open_ = results(reports / "devsecops.sarif"), results(reports / "devsecops-open.sarif")
    assert any(r.get("suppressions") for r in full), "the fixture has a suppressed finding"
    assert any(r.get("baselineState") == "unchanged" for r in full), "the fixture has baselined findings"
    assert open_, "the fixture has open findings"
    assert not [r for r in open_ if accepted(r)], "warnings-ng and SonarQube would count these as open issues"
    key = lambda r: r["partialFingerprints"]["devsecops/v1"]
    assert {key(r) for r in open_} == {key(r) for r in full if not accepted(r)}, "nothing open is lost"


def test_each_consumer_reads_the_file_meant_for_it():
    text = JENKINSFILE.read_text()
    patterns = re.findall(r"sarif\(id: 'devsecops',[^)]*pattern: '([^']+)'", text, re.S)
    assert patterns == ["reports/devsecops-open.sarif"], "warnings-ng gets the SARIF without accepted findings"
    props = dict(line.split("=", 1) for line in (ROOT / "sonar-project.properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["sonar.sarifReportPaths"] == "reports/devsecops-open.sarif"
    reports_dir = tomllib.loads((ROOT / "devsecops.toml").read_text())["paths"]["reports"]
    assert reports_dir == "reports"
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    uploads = [s for s in ci["jobs"]["test"]["steps"] if "upload-sarif" in s.get("uses", "")]
    assert [s["with"]["sarif_file"] for s in uploads] == ["main/reports/devsecops.sarif"], \
        "code scanning honours suppressions: it gets the full SARIF"


# --- the dashboard as Jenkins publishes and serves it ----------------------------------------------

class Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and "stylesheet" in (attrs.get("rel") or ""):
            self.found.append(attrs["href"])
        if tag == "script" and attrs.get("src"):
            self.found.append(attrs["src"])


def publish_html_target():
    text = JENKINSFILE.read_text()
    target = re.search(r"publishHTML\(target: \[(.*?)\]\)", text, re.S).group(1)
    return dict(re.findall(r"(\w+): '([^']*)'", target))


def published(reports, into):
    """What htmlpublisher archives: reportDir's files matching the comma-separated `includes`."""
    target = publish_html_target()
    assert target["reportDir"] == reports.name == "reports"
    source = reports
    patterns = [p.strip() for p in target.get("includes", "**/*").split(",")]
    into.mkdir()
    for path in source.iterdir():
        if path.is_file() and any(fnmatch.fnmatch(path.name, p.replace("**/", "")) for p in patterns):
            shutil.copy(path, into / path.name)
    return into, target["reportFiles"]


def test_everything_the_dashboard_loads_is_published_with_it(reports, tmp_path):
    site, page = published(reports, tmp_path / "site")
    parser = Assets()
    parser.feed((site / page).read_text())
    assert parser.found, "the dashboard names its stylesheet"
    for asset in parser.found:
        assert "/" not in asset and ":" not in asset, f"{asset}: same directory, same origin"
        assert (site / asset).is_file(), f"{asset} is referenced but not published (publishHTML includes)"


def serve(directory, csp):
    class Handler(SimpleHTTPRequestHandler):
        def end_headers(self):
            self.send_header("Content-Security-Policy", csp)
            self.send_header("X-Content-Type-Options", "nosniff")
            super().end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium(*args):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is required (scripts/lib.sh install_tools)"
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def screenshot(url, path):
    out = chromium("--window-size=1200,1600", f"--screenshot={path}", url)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", out.stderr[-1000:]
    return hashlib.sha256(data).hexdigest(), out.stderr


@pytest.mark.parametrize("csp", JENKINS_CSPS, ids=["current", "before-allow-same-origin"])
def test_the_dashboard_is_styled_and_filters_under_jenkins_csp(reports, tmp_path, csp):
    site, page = published(reports, tmp_path / "site")
    html = (site / page).read_text()
    # The same page with the stylesheet missing, and with one filter chosen (what a click does).
    bare = tmp_path / "bare"
    shutil.copytree(site, bare)
    for css in bare.glob("*.css"):
        css.unlink()
    chosen = tmp_path / "chosen"
    shutil.copytree(site, chosen)
    radios = re.findall(r'<input type="radio" name="sev" id="(sev-[a-z]+)"', html)
    assert "sev-any" in radios and len(radios) > 2, "severity filters as radio buttons"
    pick = radios[-1]
    (chosen / page).write_text(html.replace('id="sev-any" checked>', 'id="sev-any">', 1)
                               .replace(f'id="{pick}">', f'id="{pick}" checked>', 1))
    shots = {}
    for name, directory in (("styled", site), ("bare", bare), ("chosen", chosen)):
        server = serve(directory, csp)
        try:
            shots[name], log = screenshot(f"http://127.0.0.1:{server.server_address[1]}/{page}",
                                          tmp_path / f"{name}.png")
        finally:
            server.shutdown()
            server.server_close()
        refused = [line for line in log.splitlines() if "Refused to" in line and "style" in line]
        if name != "bare":
            assert not refused, f"{name}: the CSP blocked styles: {refused[:3]}"
    assert shots["styled"] != shots["bare"], "under Jenkins' CSP the page looks the same without its stylesheet"
    assert shots["chosen"] != shots["styled"], f"choosing {pick} changes nothing without script"
