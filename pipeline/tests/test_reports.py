"""devsecops reports against official schemas: SARIF 2.1.0 (the OASIS schema in ../shared/schemas) and
well-formed JUnit XML, from a real run of the binary on the real fixtures. Run by scripts/test.sh."""

import json
import re
import urllib.parse
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
    finding_cases = [c for s in root.findall("testsuite") if s.get("name") != "run" for c in s.findall("testcase")]
    assert len(summary["findings"]) == len(finding_cases)
    # The run suite lists the advisory database cargo-audit used.
    run = [s for s in root.findall("testsuite") if s.get("name") == "run"]
    assert run and any("RustSec advisory-db" in c.get("name") for c in run[0].findall("testcase"))
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


def cyclonedx_validator(version="1.5"):
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
    with open(os.path.join(folder, f"bom-{version}.schema.json")) as f:
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


# The CSP Jenkins serves published reports with: jenkinsci/jenkins core/src/main/java/hudson/model/
# DirectoryBrowserSupport.java, DEFAULT_CSP_VALUE (system property hudson.model.DirectoryBrowserSupport.CSP).
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on
    fd 3, events and answers on fd 4, each message JSON ended by a NUL byte). Used instead of a page
    script because under the sandboxed CSP no script runs at all."""

    def __init__(self):
        import shutil
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        assert browser, "chromium is missing: scripts/test.sh installs it (apt-get install chromium)"
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def setup():
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                                      "--window-size=1400,1000", "about:blank"],
                                     close_fds=False, preexec_fn=setup,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.events = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self, deadline):
        import select
        import time
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "no answer from chromium"
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                assert chunk, "chromium closed the pipe"
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, session=None, **params):
        import time
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def wait_for(self, method, timeout=30):
        import time
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url):
        for domain in ("Page", "DOM", "CSS", "Log", "Audits"):
            self.page(f"{domain}.enable")
        self.page("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.root = self.page("DOM.getDocument", depth=-1)["root"]["nodeId"]

    def select(self, selector):
        return self.page("DOM.querySelectorAll", nodeId=self.root, selector=selector)["nodeIds"]

    def style(self, node, prop):
        computed = self.page("CSS.getComputedStyleForNode", nodeId=node)["computedStyle"]
        return next(p["value"] for p in computed if p["name"] == prop)

    def click(self, selector):
        (node,) = self.select(selector)
        self.page("DOM.scrollIntoViewIfNeeded", nodeId=node)
        quad = self.page("DOM.getBoxModel", nodeId=node)["model"]["content"]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def csp_violations(self):
        """CSP problems the page reported: DevTools issues and console/log entries about the CSP."""
        out = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Audits.issueAdded" and params["issue"]["code"] == "ContentSecurityPolicyIssue":
                out.append(params["issue"]["details"])
            if event.get("method") == "Log.entryAdded" and "Content Security Policy" in params["entry"].get("text", ""):
                out.append(params["entry"]["text"])
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def serve_with_csp(directory, csp):
    """A local HTTP server for `directory` that sends exactly `csp` as Content-Security-Policy."""
    import functools
    import http.server
    import threading

    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            self.send_header("Content-Security-Policy", csp)
            super().end_headers()

        def log_message(self, fmt, *args):
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requested


def test_dashboard_works_under_the_csp_jenkins_serves_reports_with(tmp_path):
    reports = run_pipeline(tmp_path)
    findings = json.loads((reports / "devsecops.json").read_text())["findings"]
    # A page that breaks the CSP (an inline style) proves the violation check can fail.
    (reports / "inline.html").write_text("<!DOCTYPE html><html><head><style>body{color:red}</style></head><body>x</body></html>")
    server, requested = serve_with_csp(reports, JENKINS_CSP)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    chrome = DevTools()
    try:
        chrome.open(f"{base}/inline.html")
        assert chrome.csp_violations(), "an inline style under the Jenkins CSP must be reported"
        chrome.events.clear()

        chrome.open(f"{base}/security-dashboard.html")
        assert "/security-dashboard.css" in requested, requested
        (body,) = chrome.select("body")
        assert chrome.style(body, "background-color") == "rgb(15, 23, 42)", "the stylesheet applies"
        ready = chrome.page("DOM.getAttributes", nodeId=body)["attributes"]
        assert ready[ready.index("data-ready") + 1] == "false", "the sandbox runs no script: the filters must not need one"

        rows = chrome.select("#findings tbody tr.f")
        assert len(rows) == len(findings)

        def shown():
            return sum(1 for r in rows if chrome.style(r, "display") != "none")

        assert shown() == len(findings)
        chrome.click("label[for=sev-critical]")
        critical = sum(1 for f in findings if f["severity"] == "critical")
        assert 0 < critical < len(findings) and shown() == critical, "the severity filter works without script"
        chrome.click("label[for=sev-any]")
        chrome.click("label[for=cat-iac]")
        chrome.click("label[for=state-new]")
        new_iac = sum(1 for f in findings if f["state"] == "new" and f["category"] == "iac" and "suppressed_by" not in f)
        assert 0 < new_iac < len(findings) and shown() == new_iac, "category and state filters combine"
        assert not chrome.csp_violations(), chrome.csp_violations()
    finally:
        chrome.close()
        server.shutdown()


def test_open_sarif_leaves_out_accepted_results_and_is_valid(tmp_path):
    reports = run_pipeline(tmp_path)
    # Accept some: a baseline of everything, then one new finding appears; suppress one rule.
    subprocess.run([BIN, "baseline"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "devsecops.toml").write_text('[policy]\nmode = "all"\n')
    suppressions = tmp_path / ".devsecops" / "suppressions.toml"
    suppressions.write_text('[[suppression]]\nrule = "DL3007"\njustification = "pinned by digest in production builds"\n'
                            'owner = "platform-team"\nexpires = 2099-01-01\n')
    out = subprocess.run([BIN, "ingest", "--tool", "shellcheck", os.path.join(FIXTURES, "shellcheck.json")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    subprocess.run([BIN, "report"], cwd=tmp_path, check=True, capture_output=True)
    full = json.loads((reports / "devsecops.sarif").read_text())
    open_ = json.loads((reports / "devsecops-open.sarif").read_text())
    with open(os.path.join(SCHEMAS, "sarif", "sarif-schema-2.1.0.json")) as f:
        schema = json.load(f)
    for log in (full, open_):
        errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(log)]
        assert not errors, errors[:5]
    all_results = full["runs"][0]["results"]
    open_results = open_["runs"][0]["results"]
    accepted = [r for r in all_results if r.get("suppressions") or r["baselineState"] == "unchanged"]
    assert accepted and len(open_results) == len(all_results) - len(accepted) > 0
    assert all(not r.get("suppressions") and r["baselineState"] == "new" for r in open_results)
    assert {r["ruleId"] for r in open_results} == {"SC2012", "SC2035", "SC2086", "SC2164"}
    # A suppressed result says so the way SARIF defines it: a status of "accepted", a kind, and why.
    suppressed = [r for r in all_results if r.get("suppressions")]
    assert suppressed and all(r["ruleId"] == "DL3007" for r in suppressed)
    for r in suppressed:
        [s] = r["suppressions"]
        assert s["status"] == "accepted" and s["kind"] in {"inSource", "external"}, s
        assert s["justification"] == "pinned by digest in production builds", s
    assert open_["runs"][0]["properties"]["acceptedResultsOmitted"] == len(accepted)
    rules = open_["runs"][0]["tool"]["driver"]["rules"]
    for result in open_results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_reports_of_a_gate_with_base_carry_the_policy_diff_and_stay_valid(tmp_path):
    """gate --base in a real repository whose change relaxes the threshold: the SARIF stays valid
    SARIF 2.1.0 with the change as an error notification, the JUnit counts hold with a failing
    `policy` suite, and the dashboard lists the change."""
    git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (tmp_path / "devsecops.toml").write_text('[policy]\nfail_on = ["critical", "high"]\n')
    (tmp_path / ".gitignore").write_text("reports/\n.devsecops/\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    (tmp_path / "devsecops.toml").write_text('[policy]\nfail_on = ["critical"]\n')
    out = subprocess.run([BIN, "ingest", "--tool", "hadolint", os.path.join(FIXTURES, "hadolint.json")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([BIN, "gate", "--base", "main"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    reports = tmp_path / "reports"
    sarif = json.loads((reports / "devsecops.sarif").read_text())
    with open(os.path.join(SCHEMAS, "sarif", "sarif-schema-2.1.0.json")) as f:
        schema = json.load(f)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(sarif)]
    assert not errors, errors[:5]
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any(n["level"] == "error" and "policy.fail_on no longer fails on high" in n["message"]["text"]
               for n in notes), notes
    root = ET.parse(reports / "devsecops-junit.xml").getroot()
    assert int(root.get("tests")) == len(root.findall(".//testcase"))
    assert int(root.get("failures")) == len(root.findall(".//failure"))
    policy = [s for s in root.findall("testsuite") if s.get("name") == "policy"]
    assert policy and len(policy[0].findall(".//failure")) == 1
    html = (reports / "security-dashboard.html").read_text()
    assert 'id="policy"' in html and "no longer fails on high" in html
    metrics = (reports / "devsecops.prom").read_text()
    assert 'devsecops_policy_changes{kind="weakening",approved="false"} 1' in metrics


def test_sarif_uris_of_unusual_file_names_are_rfc_3986_and_valid(tmp_path):
    """Spaces, '#', '%', '?' and non-ASCII names: percent-encoded, relative to %SRCROOT%, read back
    as the same files, and the log stays valid against the OASIS schema."""
    names = ["dir with space/a#b.rs", "100%/x?.rs", "ünïcode/日本.rs"]
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep"}}, "results": [{
        "ruleId": "r", "level": "error", "message": {"text": "m"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": urllib.parse.quote(n)},
                                            "region": {"startLine": 1}}} for n in names]}]}]}
    (tmp_path / "in.sarif").write_text(json.dumps(log))
    out = subprocess.run([BIN, "ingest", "--tool", "sarif", "in.sarif"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    subprocess.run([BIN, "gate"], cwd=tmp_path, capture_output=True)
    sarif = json.loads((tmp_path / "reports" / "devsecops.sarif").read_text())
    with open(os.path.join(SCHEMAS, "sarif", "sarif-schema-2.1.0.json")) as f:
        schema = json.load(f)
    errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(sarif)]
    assert not errors, errors[:5]
    run = sarif["runs"][0]
    assert "%SRCROOT%" in run["originalUriBaseIds"]
    [result] = run["results"]
    artifacts = [l["physicalLocation"]["artifactLocation"] for l in result["locations"]]
    assert [a["uriBaseId"] for a in artifacts] == ["%SRCROOT%"] * 3
    for a in artifacts:
        assert re.fullmatch(r"(?:[A-Za-z0-9._~/-]|%[0-9A-F]{2})+", a["uri"]), a
    assert [urllib.parse.unquote(a["uri"]) for a in artifacts] == names
