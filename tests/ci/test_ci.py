"""The CI/CD definitions, checked offline: GitHub workflows against GitHub's JSON schema, zizmor,
pinned actions and permissions; the Jenkinsfile parsed as Groovy, its stages, the plugins and
credentials it needs in the Jenkins values; sonar-project.properties against what devsecops and
scripts/coverage.sh write; and the deploy, rollback, push, sonar and CI scripts in their dry-run
modes, with the real helm where a chart is rendered."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
JENKINSFILE = ROOT / "jenkins" / "Jenkinsfile"
JENKINS_VALUES = ROOT / "k8s" / "platform" / "jenkins-values.yaml"
SCHEMAS = Path(os.environ.get("DEVSECOPS_SCHEMAS", ROOT.parent / "shared" / "schemas"))
TOOLS_BIN = Path(os.environ.get("DEVSECOPS_TOOLS_CACHE", Path.home() / ".cache" / "devsecops-platform")) / "bin"
DIGEST = "sha256:" + "0123456789abcdef" * 4


# --- YAML as GitHub reads it (YAML 1.2 booleans: `on` stays a string) --------------------------------

class Yaml12Loader(yaml.SafeLoader):
    pass


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_workflow(path):
    return yaml.load(path.read_text(), Loader=Yaml12Loader)


def workflow_validator():
    schema_path = SCHEMAS / "github" / "github-workflow.json"
    assert schema_path.is_file(), f"{schema_path} missing: set DEVSECOPS_SCHEMAS"
    schema = json.loads(schema_path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_three_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "nix.yml", "release.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_against_githubs_schema(path):
    workflow = load_workflow(path)
    assert "on" in workflow and True not in workflow, "`on` must load as a string key"
    errors = sorted(workflow_validator().iter_errors(workflow), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_workflow():
    broken = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")
    broken["jobs"]["test"]["runs-on"] = {"unexpected": True}
    broken["jobs"]["test"]["steps"][0]["uses"] = 42
    assert list(workflow_validator().iter_errors(broken)), "the schema accepted a broken workflow"


# --- zizmor -------------------------------------------------------------------------------------------

def zizmor_binary():
    found = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    assert os.access(found, os.X_OK), "zizmor is required (scripts/requirements-test.txt)"
    return found


def zizmor(target):
    # Offline, every audit persona, no configuration or inline ignores: nothing is hidden.
    out = subprocess.run([zizmor_binary(), "--offline", "--no-config", "--no-ignores", "--persona", "auditor",
                          "--format", "json", str(target)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().startswith("["), out.stderr
    return out, json.loads(out.stdout)


def test_zizmor_finds_nothing_in_the_workflows():
    out, findings = zizmor(ROOT / ".github" / "workflows")
    summary = [(f["ident"], json.dumps(f["locations"][0]["symbolic"].get("key"))) for f in findings]
    assert findings == [], summary
    assert out.returncode == 0, out.stderr


def test_zizmor_as_run_here_does_find_problems(tmp_path):
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "bad.yml").write_text(
        "on: pull_request_target\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.pull_request.title }}\n")
    out, findings = zizmor(bad)
    idents = {f["ident"] for f in findings}
    assert {"unpinned-uses", "template-injection", "artipacked", "dangerous-triggers"} <= idents, idents
    assert out.returncode != 0


# --- pinning and permissions ----------------------------------------------------------------------------

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+#\s*(?P<version>v\d+\.\d+\.\d+)\s*$")


def uses_lines():
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = USES.match(line)
            if match:
                yield path.name, number, match


def test_every_action_is_pinned_to_a_commit_with_its_version():
    lines = list(uses_lines())
    assert len(lines) >= 8, "the workflows use fewer actions than expected"
    bad = [f"{name}:{number}: {m.group('ref')}{m.group('rest')}" for name, number, m in lines
           if not PINNED.match(m.group("ref")) or not VERSION_COMMENT.match(m.group("rest"))]
    assert not bad, "not pinned to a full commit SHA with a # vX.Y.Z comment:\n" + "\n".join(bad)


def test_pins_agree_with_the_verified_table_in_the_docs():
    doc = (ROOT / "docs" / "cicd.md").read_text()
    for name, number, m in uses_lines():
        pin = PINNED.match(m.group("ref"))
        repository = "/".join(pin.group("action").split("/")[:2])
        version = VERSION_COMMENT.match(m.group("rest")).group("version")
        row = f"| `{repository}` | `{version}` | `{pin.group('sha')}` |"
        assert row in doc, f"{name}:{number}: {row} is not in docs/cicd.md's table of verified pins"


# Write scopes each job needs, and nothing more.
EXPECTED_WRITES = {
    ("ci.yml", "test"): {"security-events"},
    ("nix.yml", "flake-check"): set(),
    ("release.yml", "image"): {"packages", "id-token", "attestations", "artifact-metadata"},
}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path):
    workflow = load_workflow(path)
    assert workflow.get("permissions") in ({}, {"contents": "read"}), "top level must be empty or read-only"
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, f"{job_id}: no explicit permissions"
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert writes == EXPECTED_WRITES[(path.name, job_id)], f"{job_id}: {writes}"
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: no timeout"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{job_id}: checkout keeps credentials"
    assert "group" in workflow.get("concurrency", {}), "no concurrency group"


def test_only_commits_on_main_are_released(tmp_path):
    """A v* tag publishes the image production runs: before anything is built the release checks that
    the tagged commit is on main. The step as GitHub runs it, in a clone like the checkout's."""
    steps = load_workflow(ROOT / ".github" / "workflows" / "release.yml")["jobs"]["image"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    # fetch-depth 0 fetches +refs/heads/*:refs/remotes/origin/* (actions/checkout ref-helper.ts,
    # getRefSpecForAllHistory); a shallow checkout of the tag alone has no origin/main.
    assert steps[0]["with"]["fetch-depth"] == 0
    checks = [s for s in steps if "merge-base --is-ancestor" in s.get("run", "")]
    assert len(checks) == 1 and steps.index(checks[0]) == 1, "the check comes before any build, push or signature"
    upstream, clone = tmp_path / "upstream", tmp_path / "clone"
    upstream.mkdir()
    git = lambda *args, cwd=upstream: subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                                                     text=True).stdout.strip()
    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    git("commit", "-q", "--allow-empty", "-m", "on main")
    on_main = git("rev-parse", "HEAD")
    git("checkout", "-q", "-b", "feature")
    git("commit", "-q", "--allow-empty", "-m", "not merged")
    off_main = git("rev-parse", "HEAD")
    git("checkout", "-q", "main")
    git("clone", "-q", str(upstream), str(clone), cwd=tmp_path)

    def release(sha):
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", checks[0]["run"]], cwd=clone,
                              env=dict(os.environ, GITHUB_SHA=sha, GITHUB_REF_NAME="v1.2.3"),
                              capture_output=True, text=True, timeout=60)
    assert release(on_main).returncode == 0
    refused = release(off_main)
    assert refused.returncode == 1 and "is not on main" in refused.stderr, refused.stderr


# --- what the pipelines call ----------------------------------------------------------------------------

def jenkins_shell_commands():
    return re.findall(r"\bsh\s+'([^']*)'", JENKINSFILE.read_text())


def workflow_run_commands():
    commands = []
    for path in WORKFLOWS:
        for job in load_workflow(path)["jobs"].values():
            commands += [step["run"] for step in job["steps"] if "run" in step]
    return commands


SCRIPT = re.compile(r"(?:^|[\s\"'(/])(?:main/)?((?:scripts|\.ci)/[\w./-]+)")
DEVSECOPS_CALL = re.compile(r"(?m)(?:^|[\s;&|(])(?:target/debug/)?devsecops[ \t]+(?:--config[ \t]+\S+[ \t]+)?([a-z][a-z-]*)")


def test_every_script_the_pipelines_call_exists_and_is_executable():
    commands = jenkins_shell_commands() + workflow_run_commands()
    scripts = {s for command in commands for s in SCRIPT.findall(command)}
    assert len(scripts) >= 8, scripts
    for script in sorted(scripts):
        path = ROOT / script
        assert path.is_file(), f"{script} is called but does not exist"
        assert os.access(path, os.X_OK), f"{script} is not executable"


def devsecops_subcommands():
    binary = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
    assert os.access(binary, os.X_OK), f"{binary} missing: cargo build -p devsecops (or set DEVSECOPS_BIN)"
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    section = help_text.split("Commands:")[1].split("Options:")[0]
    return {line.split()[0] for line in section.splitlines() if line.strip()}


def test_every_devsecops_subcommand_the_pipelines_call_exists():
    calls = {c for command in jenkins_shell_commands() + workflow_run_commands()
             for c in DEVSECOPS_CALL.findall(command)}
    assert {"scan", "sbom"} <= calls, calls
    known = devsecops_subcommands()
    assert calls <= known, f"unknown devsecops subcommands: {calls - known}"


# --- the Jenkinsfile ------------------------------------------------------------------------------------

def run_groovy_parser(path):
    groovy = shutil.which("groovy")
    assert groovy, "groovy is required (apt-get install groovy)"
    env = dict(os.environ)
    if not Path(env.get("JAVA_HOME", "/usr/lib/jvm/default-java"), "bin", "java").exists():
        java = shutil.which("java")
        assert java, "java is required by groovy"
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parents[1])
    return subprocess.run([groovy, str(ROOT / "tests" / "ci" / "parse_groovy.groovy"), str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_jenkinsfile_is_valid_groovy():
    out = run_groovy_parser(JENKINSFILE)
    assert out.returncode == 0, out.stderr
    assert "parsed:" in out.stdout


def test_the_groovy_check_rejects_a_syntax_error(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().replace("stage('Deploy') {", "stage('Deploy') {{", 1))
    out = run_groovy_parser(broken)
    assert out.returncode == 1, out.stdout


def strip_groovy(text):
    """Comments removed and string contents blanked, so braces and words inside them do not count."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text[i] in "'\"":
            quote = text[i]
            j = i + 1
            while text[j] != quote:
                j += 2 if text[j] == "\\" else 1
            out.append(quote * 2)
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def blocks(text):
    """The named blocks `name ... {` directly inside text, as (name, body) in order."""
    found, depth, start, name = [], 0, 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                head = re.findall(r"([A-Za-z_]\w*)\s*(?:\([^()]*\))?\s*$", text[:i])
                name, start = (head[-1] if head else None), i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            assert depth >= 0, "unbalanced braces"
            if depth == 0:
                found.append((name, text[start:i]))
    assert depth == 0, "unbalanced braces"
    return found


def pipeline_body():
    top = blocks(strip_groovy(JENKINSFILE.read_text()))
    assert [name for name, _ in top] == ["pipeline"], "one declarative pipeline block"
    return top[0][1]


REQUIRED_STAGES = ["Checkout", "Build", "Test with coverage", "Security scan", "SonarQube analysis",
                   "Quality gate", "Image", "Image scan", "Push", "Deploy", "Production approval", "Promote",
                   "Load test"]


def test_the_pipeline_has_the_stages_in_order_each_calling_the_local_command():
    text = JENKINSFILE.read_text()
    assert re.findall(r"stage\('([^']+)'\)", text) == REQUIRED_STAGES
    sections = dict(blocks(pipeline_body()))
    assert {"agent", "options", "parameters", "stages", "post"} <= set(sections)
    stage_bodies = [body for name, body in blocks(sections["stages"]) if name == "stage"]
    assert len(stage_bodies) == len(REQUIRED_STAGES)
    # The commands in each stage, from the raw text between one stage header and the next.
    raw = re.split(r"\n    stage\('", text)[1:]
    by_stage = {chunk.split("'", 1)[0]: chunk for chunk in raw}
    expectations = {
        "Checkout": ["checkout scm"],
        "Build": ["cargo build --workspace"],
        "Test with coverage": ["scripts/coverage.sh", "junit testResults: 'reports/coverage/junit.xml'"],
        "Security scan": ["target/debug/devsecops scan", "reports/devsecops-junit.xml", "publishHTML",
                          "security-dashboard.html", "archiveArtifacts artifacts: 'reports/devsecops.sarif"],
        "SonarQube analysis": ["withSonarQubeEnv('sonarqube')", "scripts/sonar.sh"],
        "Quality gate": ["waitForQualityGate abortPipeline: true"],
        "Image": ["scripts/build-image.sh", "devsecops sbom --package devsecops-app"],
        "Image scan": ["scripts/scan-image.sh"],
        "Push": ["scripts/push-image.sh", "credentialsId: 'registry'"],
        "Deploy": ["scripts/deploy.sh \"$DEPLOY_ENV\"", "credentialsId: 'kubeconfig'"],
        "Production approval": ["input message:"],
        "Promote": ["scripts/promote.sh \"$DEPLOY_ENV\"", "credentialsId: 'kubeconfig'"],
        "Load test": ["scripts/load-test.sh \"$DEPLOY_ENV\"", "credentialsId: 'kubeconfig'"],
    }
    for stage, needles in expectations.items():
        for needle in needles:
            assert needle in by_stage[stage], f"stage {stage}: {needle!r} missing"
    for stage in ("SonarQube analysis", "Quality gate", "Push", "Deploy", "Production approval", "Promote",
                  "Load test"):
        assert "branch 'main'" in by_stage[stage], f"{stage} must run on main only"


def test_notifications_are_optional():
    post = dict(blocks(dict(blocks(pipeline_body()))["post"]))
    assert {"failure", "success"} <= set(post)
    raw_post = JENKINSFILE.read_text().rsplit("\n  post {", 1)[1]
    for condition in ("failure", "success"):
        body = raw_post.split(f"{condition} {{", 1)[1].split("\n    }", 1)[0]
        assert "slackSend" in body and "if (params.NOTIFY_SLACK)" in body


# Steps and directives of the Jenkinsfile and the plugin that provides each ("core": Jenkins itself or
# Pipeline, which workflow-aggregator installs). An unknown step fails the test until it is mapped.
STEP_PLUGINS = {
    **{name: "workflow-aggregator" for name in (
        "pipeline", "agent", "label", "options", "parameters", "environment", "stages", "stage", "steps",
        "post", "when", "allOf", "anyOf", "not", "branch", "expression", "always", "success", "failure",
        "unstable", "aborted", "changed", "fixed", "regression", "cleanup", "script", "sh", "echo", "timeout",
        "retry", "skipDefaultCheckout", "disableConcurrentBuilds", "buildDiscarder", "logRotator", "choice",
        "booleanParam", "string", "tool", "error", "archiveArtifacts", "stash", "unstash", "dir", "withEnv",
        "input")},
    "checkout": "git",
    "junit": "junit",
    "publishHTML": "htmlpublisher",
    "recordIssues": "warnings-ng",
    "sarif": "warnings-ng",
    "withSonarQubeEnv": "sonar",
    "waitForQualityGate": "sonar",
    "slackSend": "slack",
    "withCredentials": "credentials-binding",
    "usernamePassword": "credentials-binding",
    "file": "credentials-binding",
    "timestamps": "timestamper",
    "ansiColor": "ansicolor",
}
GROOVY_WORDS = {"if", "else", "return", "def", "true", "false", "null", "new", "params", "env"}


def jenkinsfile_steps():
    text = strip_groovy(JENKINSFILE.read_text())
    called = set(re.findall(r"(?<![.\w])([A-Za-z_]\w*)\s*\(", text))
    called |= set(re.findall(r"(?m)^\s*([A-Za-z_]\w*)\b(?!\s*[=:.(])", text))
    called |= set(re.findall(r"=\s*([A-Za-z_]\w*)\s+''", text))
    return called - GROOVY_WORDS - {"scm", "IMAGE", "SONAR_SCANNER_HOME"}


def jenkins_values():
    values = yaml.safe_load(JENKINS_VALUES.read_text())
    scripts = {name: yaml.safe_load(text) for name, text in values["controller"]["JCasC"]["configScripts"].items()}
    return values, scripts


def test_jenkins_installs_every_plugin_the_jenkinsfile_needs():
    steps = jenkinsfile_steps()
    assert {"junit", "publishHTML", "withSonarQubeEnv", "slackSend", "recordIssues", "sh"} <= steps, steps
    unknown = steps - set(STEP_PLUGINS)
    assert not unknown, f"map these Jenkinsfile steps to their plugin in STEP_PLUGINS: {unknown}"
    installed = set(jenkins_values()[0]["controller"]["installPlugins"])
    missing = {f"{step} ({STEP_PLUGINS[step]})" for step in steps if STEP_PLUGINS[step] not in installed}
    assert not missing, f"plugins missing from jenkins-values.yaml: {missing}"


def test_jenkins_defines_every_credential_server_tool_and_agent_the_jenkinsfile_names():
    text = JENKINSFILE.read_text()
    _, scripts = jenkins_values()
    credentials = {kind_value["id"] for domain in scripts["credentials"]["credentials"]["system"]["domainCredentials"]
                   for entry in domain["credentials"] for kind_value in entry.values()}
    referenced = set(re.findall(r"(?:credentialsId|tokenCredentialId):\s*'([^']+)'", text))
    assert {"registry", "kubeconfig", "slack-token"} <= referenced
    sonar = scripts["sonar"]["unclassified"]["sonarGlobalConfiguration"]["installations"]
    referenced |= {i["credentialsId"] for i in sonar}
    assert referenced <= credentials, f"credentials not defined by JCasC: {referenced - credentials}"
    servers = set(re.findall(r"withSonarQubeEnv\('([^']+)'\)", text))
    assert servers and servers <= {i["name"] for i in sonar}
    tools = set(re.findall(r"\btool\s+'([^']+)'", text))
    installed_tools = {i["name"] for i in scripts["sonar"]["tool"]["sonarRunnerInstallation"]["installations"]}
    assert tools and tools <= installed_tools
    labels = set(re.findall(r"agent\s*\{\s*label\s+'([^']+)'", text))
    nodes = scripts["agents"]["jenkins"]["nodes"]
    assert labels and labels <= {label for n in nodes for label in n["permanent"]["labelString"].split()}
    assert scripts["slack"]["unclassified"]["slackNotifier"]["tokenCredentialId"] in credentials
    for secret in re.findall(r"\$\{(?:base64:)?\$?\{?jenkins-credentials-([\w-]+)\}", JENKINS_VALUES.read_text()):
        assert {"name": "jenkins-credentials", "keyName": secret} in jenkins_values()[0]["controller"][
            "additionalExistingSecrets"], f"secret key {secret} is not mounted"


def test_the_jenkins_job_builds_jenkins_jenkinsfile_from_this_repository():
    _, scripts = jenkins_values()
    job = scripts["job"]["jobs"][0]["script"]
    assert "scriptPath('jenkins/Jenkinsfile')" in job
    assert JENKINSFILE.is_file()
    repository = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["repository"]
    owner, name = repository.removeprefix("https://github.com/").split("/")
    assert f"repositoryUrl('{repository}')" in job and "configuredByUrl(true)" in job
    assert f"repoOwner('{owner}')" in job and f"repository('{name}')" in job


# --- SonarQube ------------------------------------------------------------------------------------------

def sonar_properties():
    pairs = [line.split("=", 1) for line in (ROOT / "sonar-project.properties").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def test_sonar_imports_the_sarif_devsecops_writes(tmp_path):
    props = sonar_properties()
    reports = tomllib.loads((ROOT / "devsecops.toml").read_text())["paths"]["reports"]
    # SonarQube imports every SARIF result, suppressed or not: it gets the SARIF without accepted ones.
    assert props["sonar.sarifReportPaths"] == f"{reports}/devsecops-open.sarif"
    binary = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
    out = subprocess.run([binary, "report", "--out", str(tmp_path / reports)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / props["sonar.sarifReportPaths"]).is_file(), "devsecops writes another SARIF name"


def test_sonar_paths_are_sane():
    props = sonar_properties()
    assert props["sonar.projectKey"] and " " not in props["sonar.projectKey"]
    for key in ("sonar.sources", "sonar.tests"):
        for path in props[key].split(","):
            assert (ROOT / path).is_dir(), f"{key}: {path} does not exist"
    generated = {"target", "reports", "dist"}
    for pattern in (props["sonar.exclusions"] + "," + props["sonar.test.exclusions"]).split(","):
        base = pattern.split("/**")[0]
        assert base in generated or (ROOT / base).is_dir(), f"exclusion {pattern} names nothing"
    # Shell and Python have no LCOV: measured, they would only count as uncovered lines.
    uncovered = [p for p in props["sonar.sources"].split(",") if not p.endswith("/src")]
    assert uncovered == ["scripts"]
    assert props["sonar.coverage.exclusions"].split(",") == [f"{p}/**" for p in uncovered]
    coverage = (ROOT / "scripts" / "coverage.sh").read_text()
    out_dir = re.search(r"^out=(\S+)$", coverage, re.M).group(1)
    assert '--lcov --output-path "$out/lcov.info"' in coverage
    assert props["sonar.rust.lcov.reportPaths"] == f"{out_dir}/lcov.info"


def test_sonar_script_names_missing_reports_and_never_takes_the_token_on_its_command_line():
    props = sonar_properties()
    reports = [props["sonar.sarifReportPaths"], props["sonar.rust.lcov.reportPaths"]]
    missing = [r for r in reports if not (ROOT / r).is_file()]
    out = subprocess.run([ROOT / "scripts" / "sonar.sh", "--dry-run"], capture_output=True, text=True,
                         env=dict(os.environ, SONAR_TOKEN="not-a-real-token"), timeout=60)
    if missing:
        assert out.returncode == 1 and all(m in out.stderr for m in missing), out.stderr
    else:
        assert out.returncode == 0 and "would run:" in out.stdout
        assert "not-a-real-token" not in out.stdout


# --- deploy, rollback, push, CI container ---------------------------------------------------------------

# scripts/deploy.sh does not ask Helm to wait (its checks hang on a claim bound on first use and
# cannot read a Rollout); it waits on the release itself (k8s/tests/test_deploy.py).
HELM_UPGRADE = r"helm upgrade --install --timeout 15m devsecops-app k8s/chart "


def helm_env(tmp_path, stub_helm=False):
    """PATH with the real helm (from the test command's tools) and a kubectl stub that records calls."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    stub = ('#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$CALLS"\n'
            'case "$1" in\n  list) echo \'[{"name":"devsecops-app","revision":"4"}]\' ;;\n'
            '  test) exit "${HELM_TEST_STATUS:-0}" ;;\n'
            '  get) case "$2" in\n'
            '    hooks) cat "${HELM_HOOKS:-/dev/null}" ;;\n'
            # kubectl get job: JOB_1 on the first call, JOB_2 on the second ("UID SUCCEEDED").
            '    job) n=$(( $(cat "$CALLS.jobs" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$CALLS.jobs";\n'
            '         v="JOB_$n"; printf %s "${!v:-}" ;;\n'
            '  esac ;;\nesac\n')
    for name in ("kubectl", "helm") if stub_helm else ("kubectl",):
        (stubs / name).write_text(stub)
        (stubs / name).chmod(0o755)
    path = f"{stubs}:{TOOLS_BIN}:{os.environ['PATH']}"
    if not stub_helm:
        assert shutil.which("helm", path=path), "helm is required (scripts/lib.sh ensure_kube_tools)"
    return dict(os.environ, PATH=path, CALLS=str(calls), DEPLOY_STATE_DIR=str(tmp_path / "state")), calls


def rendered(stdout):
    return [doc for doc in yaml.safe_load_all(stdout) if doc]


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def test_deploy_dry_run_renders_staging_with_its_values_and_the_image_digest(tmp_path):
    env, calls = helm_env(tmp_path)
    image = f"ghcr.io/example/devsecops-app@{DIGEST}"
    out = subprocess.run([ROOT / "scripts" / "deploy.sh", "staging", "--image", image, "--dry-run"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not calls.exists(), "a dry run called kubectl"
    assert re.search(HELM_UPGRADE + r"--namespace devsecops-staging -f k8s/overlays/staging/values\.yaml",
                     out.stderr), out.stderr
    docs = rendered(out.stdout)
    namespaced = [d for d in docs if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
    assert namespaced and {d["metadata"].get("namespace") for d in namespaced} == {"devsecops-staging"}
    kinds = {d["kind"] for d in docs}
    assert {"Rollout", "Cluster", "HorizontalPodAutoscaler"} <= kinds, kinds  # staging: canary on CNPG
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    images = {c["image"] for c in pod_spec(rollout)["containers"]}
    assert images == {image}
    assert "canary" in rollout["spec"]["strategy"]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    cluster = next(d for d in docs if d["kind"] == "Cluster")
    assert cluster["spec"]["instances"] == 2


def test_deploy_dry_run_renders_development_with_a_tag(tmp_path):
    env, _ = helm_env(tmp_path)
    out = subprocess.run([ROOT / "scripts" / "deploy.sh", "development", "--dry-run", "--image",
                          "localhost:32000/devsecops-app:build-7"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    docs = rendered(out.stdout)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == "devsecops-development"
    assert deployment["spec"]["replicas"] == 1
    assert [c["image"] for c in pod_spec(deployment)["containers"]] == ["localhost:32000/devsecops-app:build-7"]
    assert "Rollout" not in {d["kind"] for d in docs}


@pytest.mark.parametrize("args", [["qa"], [], ["staging", "--image", "no-tag-or-digest"], ["staging", "--bogus"]])
def test_deploy_refuses_bad_arguments(tmp_path, args):
    env, calls = helm_env(tmp_path)
    out = subprocess.run([ROOT / "scripts" / "deploy.sh", *args], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2, (args, out.stderr)
    assert not calls.exists()


def test_a_deploy_that_fails_its_helm_test_is_rolled_back_to_the_live_revision(tmp_path):
    env, calls = helm_env(tmp_path, stub_helm=True)
    ok = subprocess.run([ROOT / "scripts" / "deploy.sh", "production", "--image", f"r.example/app@{DIGEST}"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    recorded = calls.read_text()
    assert "kubectl apply -f k8s/overlays/production/namespace.yaml" in recorded
    assert re.search(HELM_UPGRADE + r"--namespace devsecops-production -f k8s/overlays/production/values\.yaml",
                     recorded), recorded
    assert "helm test devsecops-app --namespace devsecops-production" in recorded
    record = tmp_path / "state" / "production.previous-revision"
    assert not record.exists(), "a finished deploy leaves nothing to roll back"
    # After a successful deploy there is nothing to roll back.
    calls.unlink()
    quiet = subprocess.run([ROOT / "scripts" / "rollback.sh", "production"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert quiet.returncode == 0 and not calls.exists()
    # helm test fails: the record stays and the rollback returns to revision 4.
    failing = subprocess.run([ROOT / "scripts" / "deploy.sh", "production"], capture_output=True, text=True,
                             env=dict(env, HELM_TEST_STATUS="1"), timeout=60)
    assert failing.returncode != 0
    assert record.read_text().strip() == "4"
    dry = subprocess.run([ROOT / "scripts" / "rollback.sh", "production", "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert "would run: helm rollback devsecops-app 4 --namespace devsecops-production" in dry.stdout
    calls.unlink()
    back = subprocess.run([ROOT / "scripts" / "rollback.sh", "production"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert back.returncode == 0, back.stderr
    assert calls.read_text().splitlines() == [
        "helm get manifest devsecops-app --revision 4 --namespace devsecops-production",
        "helm rollback devsecops-app 4 --namespace devsecops-production --timeout 10m"]
    assert not record.exists()


def test_deploy_installs_the_load_test_job_with_its_image_and_its_own_helm_test_leaves_it_out(tmp_path):
    env, calls = helm_env(tmp_path)
    loadtest = f"ghcr.io/example/devsecops-loadtest@{DIGEST}"
    out = subprocess.run([ROOT / "scripts" / "deploy.sh", "staging", "--image", "r.example/app:1", "--loadtest-image",
                          loadtest, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    jobs = [d for d in rendered(out.stdout) if d["kind"] == "Job" and d["metadata"]["name"] == "devsecops-app-loadtest"]
    assert len(jobs) == 1, "the load-test Job is rendered with the release"
    assert [c["image"] for c in pod_spec(jobs[0])["containers"]] == [loadtest]
    assert "helm test devsecops-app --namespace devsecops-staging --filter !name=devsecops-app-loadtest" in out.stderr
    without = subprocess.run([ROOT / "scripts" / "deploy.sh", "staging", "--dry-run"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert without.returncode == 0, without.stderr
    assert not [d for d in rendered(without.stdout) if d["kind"] == "Job"], "no load test unless asked for"
    bad = subprocess.run([ROOT / "scripts" / "deploy.sh", "staging", "--loadtest-image", "loadtest", "--dry-run"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--loadtest-image: REPO:TAG or REPO@sha256:DIGEST" in bad.stderr
    # Production never gets it: its sign-ups would write there, and a plain helm test would run it.
    production = subprocess.run([ROOT / "scripts" / "deploy.sh", "production", "--loadtest-image", loadtest,
                                 "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert production.returncode == 0, production.stderr
    assert "production: the load test is not installed" in production.stderr
    assert not [d for d in rendered(production.stdout) if "loadtest" in d["metadata"]["name"]]


def test_the_deploy_and_the_promotion_run_helm_test_without_the_load_test(tmp_path):
    env, calls = helm_env(tmp_path, stub_helm=True)
    ok = subprocess.run([ROOT / "scripts" / "deploy.sh", "staging"], capture_output=True, text=True, env=env,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    tests = [line for line in calls.read_text().splitlines() if line.startswith("helm test")]
    assert tests and all("--filter !name=devsecops-app-loadtest" in line for line in tests), tests


LOAD_TEST_HOOKS = """---
# Source: devsecops-app/templates/tests/test-health.yaml
apiVersion: v1
kind: Pod
metadata:
  name: devsecops-app-test
---
# Source: devsecops-app/templates/networkpolicy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: devsecops-app-loadtest
---
# Source: devsecops-app/templates/tests/loadtest-job.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: devsecops-app-loadtest
  namespace: devsecops-staging
"""


@pytest.mark.parametrize("status, after", [("0", "new-uid 1"), ("1", "new-uid "), ("1", "new-uid 1")])
def test_load_test_runs_only_the_load_test_hooks_and_prints_the_jobs_log(tmp_path, status, after):
    env, calls = helm_env(tmp_path, stub_helm=True)
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(LOAD_TEST_HOOKS)
    out = subprocess.run([ROOT / "scripts" / "load-test.sh", "staging", "--timeout", "12m"], capture_output=True,
                         text=True, env=dict(env, HELM_HOOKS=str(hooks), HELM_TEST_STATUS=status,
                                             JOB_1="old-uid", JOB_2=after), timeout=60)
    assert out.returncode == int(status), out.stderr
    job = "kubectl get job devsecops-app-loadtest --namespace devsecops-staging -o jsonpath="
    assert calls.read_text().splitlines() == [
        "helm get hooks devsecops-app --namespace devsecops-staging",
        job + "{.metadata.uid}",
        "helm test devsecops-app --namespace devsecops-staging --filter name=devsecops-app-loadtest --timeout 12m",
        job + "{.metadata.uid} {.status.succeeded}",
        "kubectl logs job/devsecops-app-loadtest --namespace devsecops-staging"]


@pytest.mark.parametrize("before, after", [("old-uid", "old-uid 1"), ("old-uid", ""), ("", "")])
def test_load_test_fails_when_helm_passes_without_a_job_of_this_run(tmp_path, before, after):
    """Helm 3 takes a test hook deleted while it waits for a success; a stale Job's log would pass
    for this run's. Neither does here."""
    env, calls = helm_env(tmp_path, stub_helm=True)
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(LOAD_TEST_HOOKS)
    out = subprocess.run([ROOT / "scripts" / "load-test.sh", "staging"], capture_output=True, text=True,
                         env=dict(env, HELM_HOOKS=str(hooks), JOB_1=before, JOB_2=after), timeout=60)
    assert out.returncode == 1 and "no Job of this run" in out.stderr, out.stderr
    assert not any(line.startswith("kubectl logs") for line in calls.read_text().splitlines())


@pytest.mark.parametrize("hooks", [
    "",  # a release deployed without the load test
    LOAD_TEST_HOOKS.replace("kind: Job", "kind: Pod"),  # only other kinds under that name
    LOAD_TEST_HOOKS.replace("name: devsecops-app-loadtest\n  namespace", "name: other-loadtest\n  namespace"),
])
def test_load_test_fails_when_the_release_has_no_load_test_job(tmp_path, hooks):
    """helm test with a filter that matches nothing runs nothing and passes: refused first."""
    env, calls = helm_env(tmp_path, stub_helm=True)
    path = tmp_path / "hooks.yaml"
    path.write_text(hooks)
    out = subprocess.run([ROOT / "scripts" / "load-test.sh", "staging"], capture_output=True, text=True,
                         env=dict(env, HELM_HOOKS=str(path)), timeout=60)
    assert out.returncode == 1 and "has no load-test Job devsecops-app-loadtest" in out.stderr, out.stderr
    assert not any(line.startswith("helm test") for line in calls.read_text().splitlines())


@pytest.mark.parametrize("args", [[], ["qa"], ["staging", "--timeout"], ["staging", "--bogus"],
                                  ["staging", "production"], ["staging", "--timeout", "soon"]])
def test_load_test_refuses_bad_arguments(tmp_path, args):
    env, calls = helm_env(tmp_path, stub_helm=True)
    out = subprocess.run([ROOT / "scripts" / "load-test.sh", *args], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2, (args, out.stderr)
    assert not calls.exists()


def test_rollback_after_a_first_install_leaves_the_release_for_inspection(tmp_path):
    env, calls = helm_env(tmp_path, stub_helm=True)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "staging.previous-revision").write_text("none\n")
    out = subprocess.run([ROOT / "scripts" / "rollback.sh", "staging"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and not calls.exists() and "no earlier revision" in out.stderr


def test_push_logs_in_through_stdin_and_needs_a_tagged_target():
    script = ROOT / "scripts" / "push-image.sh"
    env = dict(os.environ, REGISTRY_USERNAME="ci", REGISTRY_PASSWORD="not-a-real-password")
    out = subprocess.run([script, "--dry-run", "devsecops-app:build-7", "localhost:32000/devsecops-app:build-7"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "would run: docker login localhost:32000 --username ci --password-stdin",
        "would run: docker tag devsecops-app:build-7 localhost:32000/devsecops-app:build-7",
        "would run: docker push localhost:32000/devsecops-app:build-7"]
    assert "not-a-real-password" not in out.stdout + out.stderr
    for target in ("ghcr.io/example/app", f"ghcr.io/example/app@{DIGEST}"):
        bad = subprocess.run([script, "--dry-run", "a:b", target], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2, target


def test_ci_runs_the_test_command_in_debian_12_sharing_network_and_docker():
    out = subprocess.run([ROOT / "scripts" / "ci-debian.sh", "--dry-run"], capture_output=True, text=True,
                         env=dict(os.environ, CI_CACHE_DIR="/tmp/ci-cache"), timeout=30)
    assert out.returncode == 0, out.stderr
    command = out.stdout.split()
    assert command[:3] == ["docker", "run", "--rm"]
    assert "--network" in command and command[command.index("--network") + 1] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock" in command
    assert f"{ROOT.parent}:{ROOT.parent}" in command, "../shared must be visible at the same path"
    image = command[-4]
    assert image.startswith("devsecops-ci:"), "the image prepared from debian:12 with the base packages"
    assert command[-3:] == ["scripts/ci-debian.sh", "--inside", ".ci/run"]
    passed = {command[i + 1] for i, word in enumerate(command) if word == "-e"}
    assert {"CI", "SONAR_HOST_URL", "SONAR_AUTH_TOKEN", "REGISTRY_PASSWORD", "KUBECONFIG"} <= passed
    assert not any("=" in name and not name.startswith(("RUST_TOOLCHAIN=", "CI_HOST_")) for name in passed), \
        "values pass by name, never on the command line"
    ci = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")
    runs = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert "scripts/ci-debian.sh .ci/run" in runs


def test_pull_requests_are_gated_by_the_policy_of_their_base(tmp_path):
    """After the test command (which scans with the change's own files), a pull request is gated with
    the policy of its base commit, before anything is uploaded, and the summary goes to the job."""
    steps = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]["steps"]
    runs = [step.get("run", "") for step in steps]
    gate = next(step for step in steps if "--base" in step.get("run", ""))
    assert gate["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert "github.event_name == 'pull_request'" in gate["if"] and "!cancelled()" in gate["if"]
    at = steps.index(gate)
    assert runs.index("scripts/ci-debian.sh .ci/run") < at
    assert all(steps.index(s) > at for s in steps if "upload" in s.get("uses", "")), "uploads carry the policy diff"
    assert steps[0]["with"]["fetch-depth"] == 0, "the base commit is in the clone"
    # The step as GitHub runs it (without the container, which only changes where it runs), on a pull
    # request that relaxes the threshold.
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *args: subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout
    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (repo / "devsecops.toml").write_text('[policy]\nfail_on = ["critical", "high"]\n')
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    base = git("rev-parse", "HEAD").strip()
    (repo / "devsecops.toml").write_text('[policy]\nfail_on = ["critical"]\n')
    binary = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
    (repo / "target" / "debug").mkdir(parents=True)
    (repo / "target" / "debug" / "devsecops").symlink_to(binary)
    summary = tmp_path / "summary.md"
    script = gate["run"].replace("scripts/ci-debian.sh ", "")
    out = subprocess.run(["bash", "-e", "-c", script], cwd=repo, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, BASE_SHA=base, GITHUB_STEP_SUMMARY=str(summary)))
    assert out.returncode == 1, out.stdout + out.stderr
    text = summary.read_text()
    assert "### Policy changes against" in text and "no longer fails on high" in text, text
    assert "❌ weakening, not approved" in text


def test_the_base_gate_runs_on_every_pull_request_and_fails_without_its_findings(tmp_path):
    """The base gate step is never skipped by what the change does to the files it reads: a change
    that moves paths.findings (so nothing is where the base's policy reads) fails the step."""
    steps = load_workflow(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]["steps"]
    gate = next(step for step in steps if "--base" in step.get("run", ""))
    condition = gate["if"]
    assert "hashFiles" not in condition and "findings" not in condition, condition
    assert condition.replace(" ", "") == "${{!cancelled()&&github.event_name=='pull_request'}}", condition
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *args: subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout
    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (repo / "empty.sarif").write_text('{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[]}]}')
    scanner = '[[scanner]]\nname = "x"\nformat = "sarif"\ncommand = ["cat", "empty.sarif"]\n'
    (repo / "devsecops.toml").write_text('[policy]\nfail_on = ["critical", "high"]\n' + scanner)
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    base = git("rev-parse", "HEAD").strip()
    (repo / "devsecops.toml").write_text(
        '[policy]\nfail_on = ["critical", "high"]\n[paths]\nfindings = "moved/findings.json"\n' + scanner)
    binary = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
    scan = subprocess.run([binary, "scan"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert scan.returncode == 0 and (repo / "moved" / "findings.json").is_file(), scan.stdout + scan.stderr
    (repo / "target" / "debug").mkdir(parents=True)
    (repo / "target" / "debug" / "devsecops").symlink_to(binary)
    script = gate["run"].replace("scripts/ci-debian.sh ", "")
    out = subprocess.run(["bash", "-e", "-c", script], cwd=repo, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, BASE_SHA=base, GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md")))
    assert out.returncode != 0, out.stdout + out.stderr
    assert ".devsecops/findings.json: no findings file" in out.stdout, out.stdout + out.stderr
    assert "paths.findings moved" in (tmp_path / "summary.md").read_text()


def test_the_shared_data_fetched_in_ci_is_the_pinned_content(tmp_path):
    script = ROOT / "scripts" / "fetch-shared.sh"
    manifest = re.search(r'MANIFEST="\n(.*?)\n"', script.read_text(), re.S).group(1).splitlines()
    pinned = {line.split()[1] for line in manifest}
    present = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*") if p.is_file() and p.name != "README.md"}
    assert pinned == present, f"not pinned: {present - pinned}; pinned but absent: {pinned - present}"
    ok = subprocess.run([script, "--verify", str(SCHEMAS.parent)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    target = copy / "github" / "github-workflow.json"
    target.chmod(target.stat().st_mode | stat.S_IWUSR)
    target.write_text(target.read_text().replace("workflow", "workfl0w", 1))
    bad = subprocess.run([script, "--verify", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "github/github-workflow.json" in bad.stderr


@pytest.mark.parametrize("out", ["reports", "reports/deploy", "app", "/tmp/scan", "reports/image-scan/../deploy",
                                 "reports/image-scan-"])
def test_the_image_scan_empties_only_a_directory_of_its_own(tmp_path, out):
    """scan-image.sh starts with `rm -rf` of its output directory: only reports/image-scan or
    reports/image-scan-<name> may be given, through a symlinked checkout too."""
    link = tmp_path / "checkout"
    link.symlink_to(ROOT)
    refused = subprocess.run([link / "scripts" / "scan-image.sh", "--out", out, "some-image"], capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 2 and "--out" in refused.stderr, refused.stderr
    # The accepted forms get past the check (and stop later, at a --base that is no full ref).
    for good in ("reports/image-scan", "reports/image-scan-loadtest"):
        past = subprocess.run([link / "scripts" / "scan-image.sh", "--base", "main", "--out", good, "some-image"],
                              capture_output=True, text=True, timeout=30)
        assert past.returncode == 2 and "give a full ref" in past.stderr, past.stderr
