"""k8s/platform/sonarqube-webhook.sh against a stand-in for SonarQube's Web API that follows
SonarQube's own source for api/webhooks (server/sonar-webserver-webapi .../webhook/ws: list returns
key, name, url and the secret; create and update take name and url as mandatory parameters and a
secret of 1 to 200 characters; update needs the key of an existing webhook; every call needs a
logged-in user with Administer). The real curl talks HTTP to it; kubectl is a stub holding the
jenkins-credentials Secret."""

import base64
import json
import os
import secrets
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "k8s" / "platform" / "sonarqube-webhook.sh"
# Made per run: a literal would be a committed credential to every secret scanner.
TOKEN = "squ_" + secrets.token_hex(20)
SECRET = secrets.token_hex(32)
JENKINS_URL = "http://jenkins.ci.svc.cluster.local:8080/sonarqube-webhook/"


class FakeSonarQube:
    def __init__(self):
        self.webhooks = []
        self.posts = []
        self.next_key = 1
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, status, message):
                self.reply(status, {"errors": [{"msg": message}]})

            def authorised(self):
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.error(401, "Authentication is required")
                    return False
                return True

            def do_GET(self):
                if not self.authorised():
                    return
                if urlparse(self.path).path != "/api/webhooks/list":
                    return self.error(404, "Unknown url")
                self.reply(200, {"webhooks": [dict(h) for h in outer.webhooks]})

            def do_POST(self):
                if not self.authorised():
                    return
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
                path = urlparse(self.path).path
                outer.posts.append((path, form))
                for param in ("name", "url"):
                    if not form.get(param):
                        return self.error(400, f"The '{param}' parameter is missing")
                secret = form.get("secret")
                if secret is not None and not 1 <= len(secret) <= 200:
                    return self.error(400, "'secret' length must be between 1 and 200")
                if path == "/api/webhooks/create":
                    hook = {"key": f"AX{outer.next_key}", "name": form["name"], "url": form["url"]}
                    outer.next_key += 1
                    if secret:
                        hook["secret"] = secret
                    outer.webhooks.append(hook)
                    return self.reply(200, {"webhook": hook})
                if path == "/api/webhooks/update":
                    hook = next((h for h in outer.webhooks if h["key"] == form.get("webhook")), None)
                    if hook is None:
                        return self.error(404, f"No webhook with key '{form.get('webhook')}'")
                    hook.update(name=form["name"], url=form["url"])
                    hook.pop("secret", None)
                    if secret:
                        hook["secret"] = secret
                    return self.reply(204)
                self.error(404, "Unknown url")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sonar():
    server = FakeSonarQube()
    yield server
    server.close()


def run(tmp_path, sonar, *args, secret=SECRET, token=TOKEN):
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    encoded = base64.b64encode(secret.encode()).decode()
    # kubectl: the jenkins-credentials Secret, as `kubectl get -o jsonpath` prints one key.
    (stubs / "kubectl").write_text(
        "#!/usr/bin/env bash\n"
        f"[ \"$*\" = \"-n ci get secret jenkins-credentials -o jsonpath={{.data.sonar-webhook-secret}}\" ] || exit 9\n"
        f"printf %s '{encoded}'\n")
    # curl: the real one, recording its command line.
    real_curl = shutil.which("curl")
    assert real_curl, "curl is required"
    (stubs / "curl").write_text(f'#!/usr/bin/env bash\necho "$*" >> "{tmp_path}/curl-args"\nexec {real_curl} "$@"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": str(tmp_path), "SONAR_URL": sonar.url}
    if token:
        env["SONAR_ADMIN_TOKEN"] = token
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=60)


def test_creates_the_webhook_once_with_the_secret_jenkins_checks(tmp_path, sonar):
    out = run(tmp_path, sonar)
    assert out.returncode == 0, out.stderr
    assert sonar.webhooks == [{"key": "AX1", "name": "jenkins", "url": JENKINS_URL, "secret": SECRET}]
    again = run(tmp_path, sonar)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert [p for p, _ in sonar.posts] == ["/api/webhooks/create"], "a second run changes nothing"
    args = (tmp_path / "curl-args").read_text()
    assert SECRET not in args and TOKEN not in args, "the token and the secret never reach a command line"


def test_a_rotated_secret_or_moved_jenkins_updates_the_same_webhook(tmp_path, sonar):
    sonar.webhooks.append({"key": "AX7", "name": "jenkins", "url": "http://old-jenkins:8080/sonarqube-webhook/"})
    sonar.webhooks.append({"key": "AX8", "name": "other", "url": "http://elsewhere/"})
    out = run(tmp_path, sonar)
    assert out.returncode == 0, out.stderr
    assert sonar.webhooks[0] == {"key": "AX7", "name": "jenkins", "url": JENKINS_URL, "secret": SECRET}
    assert sonar.webhooks[1] == {"key": "AX8", "name": "other", "url": "http://elsewhere/"}
    assert [p for p, _ in sonar.posts] == ["/api/webhooks/update"]


def test_dry_run_changes_nothing(tmp_path, sonar):
    out = run(tmp_path, sonar, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would create webhook jenkins" in out.stdout and SECRET not in out.stdout
    assert sonar.posts == [] and sonar.webhooks == []


@pytest.mark.parametrize("case", ["no token", "weak secret", "wrong token", "bad option"])
def test_refuses_what_would_leave_the_gate_open_or_unreachable(tmp_path, sonar, case):
    if case == "no token":
        out = run(tmp_path, sonar, token=None)
        assert out.returncode == 2 and "SONAR_ADMIN_TOKEN" in out.stderr
    elif case == "weak secret":
        out = run(tmp_path, sonar, secret="jenkins")
        assert out.returncode == 2 and "32 to 200 characters" in out.stderr
    elif case == "wrong token":
        out = run(tmp_path, sonar, token="squ_wrong")
        assert out.returncode != 0 and "Authentication is required" in out.stderr
    else:
        out = run(tmp_path, sonar, "--force")
        assert out.returncode == 2
    assert sonar.posts == [] and sonar.webhooks == []


def test_two_webhooks_of_that_name_are_an_error_not_a_guess(tmp_path, sonar):
    sonar.webhooks += [{"key": "AX1", "name": "jenkins", "url": "http://a/"},
                       {"key": "AX2", "name": "jenkins", "url": "http://b/"}]
    out = run(tmp_path, sonar)
    assert out.returncode != 0 and "2 webhooks are named jenkins" in out.stderr
    assert sonar.posts == []


def test_the_scripts_outside_the_shellcheck_step_pass_shellcheck():
    """scripts/test.sh's shellcheck step covers scripts/; these live beside what they serve."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (scripts/lib.sh install_tools)"
    scripts = sorted((ROOT / "k8s" / "platform").glob("*.sh")) + sorted((ROOT / "tests" / "ci").glob("*.sh"))
    assert SCRIPT in scripts and len(scripts) >= 2
    out = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
