"""What each consumer of the security reports is given, from a real run of the devsecops binary:
warnings-ng (Jenkins) and SonarQube import every SARIF result, suppressed or not (analysis-model's
SarifAdapter keeps what violations-lib only flags as suppressed; SonarQube's RunMapper maps every
result), so they get reports/devsecops-open.sarif, which carries no accepted finding; GitHub code
scanning honours suppressions and gets the full reports/devsecops.sarif. And the dashboard as
Jenkins publishes it (htmlpublisher copies reportDir's files matching `includes`) and serves it
(the CSP of core's DirectoryBrowserSupport), in Chromium."""

import fnmatch
import importlib.util
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


def devtools_module():
    """pipeline/tests' DevTools client (Chromium over --remote-debugging-pipe), loaded from its file:
    one client for both test suites. Under the sandboxed CSP no page script runs, so layout is read
    through the protocol: the computed style of each row."""
    path = ROOT / "pipeline" / "tests" / "test_reports.py"
    spec = importlib.util.spec_from_file_location("pipeline_test_reports", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_as_jenkins(directory, csp):
    """`directory` over HTTP with the headers DirectoryBrowserSupport sets on a published file served
    from Jenkins' own domain: the CSP under its three names. Returns the server and the paths asked for."""
    requested = []

    class Handler(SimpleHTTPRequestHandler):
        def end_headers(self):
            for header in ("Content-Security-Policy", "X-WebKit-CSP", "X-Content-Security-Policy"):
                self.send_header(header, csp)
            super().end_headers()

        def log_message(self, fmt, *args):
            requested.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requested


# The dashboard's filter rules: `#findings-section:has(#sev-high:checked) tr.f:not(...){display:none}`.
FILTER_RULE = re.compile(r"[^{}]*:checked\)[^{}]*\{[^{}]*\}")


def shown_severities(chrome, url, click=None):
    """The data-severity of every row of the findings table, and of those the stylesheet leaves
    shown, after clicking a filter's label as a user does."""
    chrome.events.clear()
    chrome.open(url)
    if click:
        chrome.click(f"label[for={click}]")
    rows, shown = [], []
    for row in chrome.select("#findings tbody tr.f"):
        attributes = chrome.page("DOM.getAttributes", nodeId=row)["attributes"]
        severity = dict(zip(attributes[0::2], attributes[1::2]))["data-severity"]
        rows.append(severity)
        if chrome.style(row, "display") != "none":
            shown.append(severity)
    return rows, shown


@pytest.mark.parametrize("csp", JENKINS_CSPS, ids=["current", "before-allow-same-origin"])
def test_the_dashboard_is_styled_and_filters_under_jenkins_csp(reports, tmp_path, csp):
    site, page = published(reports, tmp_path / "site")
    findings = json.loads((reports / "devsecops.json").read_text())["findings"]
    severities = sorted(f["severity"] for f in findings)
    # A severity that some rows have and others do not: the filter must hide exactly the others.
    pick = next(s for s in ("critical", "high", "medium", "low", "info") if 0 < severities.count(s) < len(findings))
    # The control: the same site with the filter rules taken out of its stylesheet.
    unfiltered = tmp_path / "unfiltered"
    shutil.copytree(site, unfiltered)
    (css,) = unfiltered.glob("*.css")
    stripped, removed = FILTER_RULE.subn("", css.read_text())
    assert removed, "the stylesheet has no :checked filter rules"
    css.write_text(stripped)

    chrome = devtools_module().DevTools()
    servers = []
    try:
        urls = {}
        for name, directory in (("site", site), ("unfiltered", unfiltered)):
            server, requested = serve_as_jenkins(directory, csp)
            servers.append(server)
            urls[name] = (f"http://127.0.0.1:{server.server_address[1]}/{page}", requested)
        url, requested = urls["site"]
        rows, shown = shown_severities(chrome, url)
        assert sorted(rows) == severities and sorted(shown) == severities, "every finding is listed and shown at first"
        (body,) = chrome.select("body")
        assert chrome.style(body, "background-color") not in ("rgba(0, 0, 0, 0)", "transparent"), \
            "under Jenkins' CSP the stylesheet does not apply"
        assert any(path.endswith(".css") for path in requested), requested
        assert not chrome.csp_violations(), chrome.csp_violations()
        rows, shown = shown_severities(chrome, url, click=f"sev-{pick}")
        assert shown == [s for s in rows if s == pick], \
            f"choosing {pick} leaves {len(shown)} rows shown ({sorted(set(shown))}), not its {rows.count(pick)}"
        assert not chrome.csp_violations(), chrome.csp_violations()
        # Without the filter rules the same click hides nothing: what the check above measures is the rules.
        rows, shown = shown_severities(chrome, urls["unfiltered"][0], click=f"sev-{pick}")
        assert shown == rows and len(rows) == len(findings)
    finally:
        chrome.close()
        for server in servers:
            server.shutdown()
            server.server_close()
