"""jenkins/Jenkinsfile as Jenkins' declarative runtime reads it: the syntax tree from Groovy itself
(tests/ci/jenkinsfile_model.groovy), then a branch's first build simulated from it. On a first build
the parameters are not environment variables yet (JENKINS-41929; workflow-cps ParamsVariable gives
params.* the defaults from the job property Declarative has just set, while the environment comes
from the build's ParametersAction, which a first build does not have): every shell command must
work with the mapped environment alone. Also: which stages run where, the deploy's own rollback,
the production approval, and the Jenkins values the pipeline depends on."""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "jenkins" / "Jenkinsfile"
JENKINS_VALUES = ROOT / "k8s" / "platform" / "jenkins-values.yaml"
SONAR_VALUES = ROOT / "k8s" / "platform" / "sonarqube-values.yaml"

# What Jenkins itself puts into a multibranch build's environment before any parameter exists.
JENKINS_BUILTINS = {
    "BUILD_NUMBER": "1", "BUILD_ID": "1", "BUILD_TAG": "jenkins-devsecops-app-main-1",
    "BUILD_URL": "http://jenkins.local/job/devsecops-app/job/main/1/", "JOB_NAME": "devsecops-app/main",
    "JOB_BASE_NAME": "main", "BRANCH_NAME": "main", "NODE_NAME": "devsecops-host", "EXECUTOR_NUMBER": "0",
    "JENKINS_URL": "http://jenkins.local/",
}
# Variables the Jenkinsfile's wrappers bind: withSonarQubeEnv (sonar plugin) and withCredentials.
SONAR_ENV = {"SONAR_HOST_URL", "SONAR_AUTH_TOKEN", "SONAR_CONFIG_NAME", "SONAR_EXTRA_PROPS", "SONAR_MAVEN_GOAL"}


def groovy_env():
    env = dict(os.environ)
    if not Path(env.get("JAVA_HOME", "/usr/lib/jvm/default-java"), "bin", "java").exists():
        java = shutil.which("java")
        assert java, "java is required by groovy"
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parents[1])
    return env


def load_model(path=JENKINSFILE):
    groovy = shutil.which("groovy")
    assert groovy, "groovy is required (scripts/lib.sh install_tools)"
    out = subprocess.run([groovy, str(ROOT / "tests" / "ci" / "jenkinsfile_model.groovy"), str(path)],
                         capture_output=True, text=True, env=groovy_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- the declarative model --------------------------------------------------------------------------

def calls(body, name=None):
    return [node for node in body if isinstance(node, dict) and "call" in node and name in (None, node["call"])]


def closure(node):
    bodies = [a["closure"] for a in node["args"] if isinstance(a, dict) and "closure" in a]
    assert len(bodies) == 1, node
    return bodies[0]


def section(body, name):
    found = calls(body, name)
    assert len(found) <= 1, name
    return closure(found[0]) if found else []


class Pipeline:
    def __init__(self, tree):
        top = calls(tree, "pipeline")
        assert len(top) == 1, "one declarative pipeline block"
        self.body = closure(top[0])
        self.parameters = {p["named"]["name"]: p for p in calls(section(self.body, "parameters"))}
        self.environment = {a["assign"]: a["value"] for a in section(self.body, "environment")}
        self.stages = [Stage(node) for node in calls(section(self.body, "stages"), "stage")]
        self.post = {node["call"]: closure(node) for node in calls(section(self.body, "post"))}

    def stage(self, name):
        return next(s for s in self.stages if s.name == name)

    def defaults(self):
        """params.* on a first build: each parameter's default (a choice's first choice)."""
        values = {}
        for name, p in self.parameters.items():
            values[name] = p["named"]["choices"][0] if p["call"] == "choice" else p["named"]["defaultValue"]
        return values


class Stage:
    def __init__(self, node):
        self.name = node["args"][0]
        body = closure(node)
        self.when = section(body, "when")
        self.environment = {a["assign"]: a["value"] for a in section(body, "environment")}
        self.steps = section(body, "steps")
        self.post = {n["call"]: closure(n) for n in calls(section(body, "post"))}


def shell_steps(body, bound=frozenset()):
    """Every sh command in a body with the variables its wrappers bind: (command, bound names)."""
    found = []
    for node in body:
        if not isinstance(node, dict):
            continue
        if node.get("call") == "sh":
            command = node["args"][0] if node["args"] else node["named"]["script"]
            assert isinstance(command, str), f"line {node['line']}: sh with an interpolated Groovy string"
            found.append((command, bound))
            continue
        inner = set(bound)
        if node.get("call") == "withCredentials":
            for binding in node["args"][0]:
                inner |= {v for k, v in binding["named"].items() if k.endswith("Variable") or k == "variable"}
        if node.get("call") == "withSonarQubeEnv":
            inner |= SONAR_ENV
        for arg in node.get("args", []):
            if isinstance(arg, dict) and "closure" in arg:
                found += shell_steps(arg["closure"], frozenset(inner))
        for key in ("then", "else"):
            found += shell_steps(node.get(key, []), bound)
    return found


def gstring_value(value, params, env):
    """An environment value as Declarative evaluates it: plain strings, or "${params.X}"/"${env.X}"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "gstring" in value:
        out = value["strings"][0]
        for expression, text in zip(value["values"], value["strings"][1:]):
            scope, _, name = expression.partition(".")
            assert scope in ("params", "env") and name, f"cannot evaluate {expression}"
            resolved = params.get(name) if scope == "params" else env.get(name)
            assert resolved is not None, f"{expression} is undefined on a first build"
            out += str(resolved) + text
        return out
    if isinstance(value, dict) and value.get("call") == "tool":
        return "/var/lib/jenkins-agent/tools/hudson.plugins.sonar.SonarRunnerInstallation/" + value["args"][0]
    raise AssertionError(f"environment value not understood: {value}")


def first_build_environment(pipeline):
    env = dict(JENKINS_BUILTINS)
    for name, value in pipeline.environment.items():
        env[name] = gstring_value(value, pipeline.defaults(), env)
    return env


SHELL_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# What a multibranch build of a change request adds (CHANGE_TARGET: the branch it goes into). A
# branch build has none, so a command may read them only with a default: ${CHANGE_TARGET:-main}.
CHANGE_REQUEST_GUARD = re.compile(r"\$\{CHANGE_\w+:[-+][^}]*\}")


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(load_model())


def test_the_model_reader_sees_the_whole_pipeline(pipeline):
    assert [s.name for s in pipeline.stages] == [
        "Checkout", "Build", "Test with coverage", "Security scan", "SonarQube analysis", "Quality gate",
        "Image", "Image scan", "Push", "Deploy", "Production approval", "Promote", "Load test"]
    assert set(pipeline.parameters) == {"DEPLOY_ENV", "DEPLOY", "REGISTRY", "LOAD_TEST", "QUALITY_GATE",
                                        "NOTIFY_SLACK", "SLACK_CHANNEL"}
    assert len([c for s in pipeline.stages for c in shell_steps(s.steps)]) == 16


def test_every_parameter_a_shell_command_reads_is_mapped_from_params(pipeline):
    for name in pipeline.parameters:
        mapped = pipeline.environment.get(name)
        used = any(SHELL_VAR.search(c) and name in {a or b for a, b in SHELL_VAR.findall(c)}
                   for s in pipeline.stages for c, _ in shell_steps(s.steps) + shell_steps(
                       [n for post in s.post.values() for n in post]))
        if used:
            assert mapped == {"gstring": f"$params.{name}", "strings": ["", ""], "values": [f"params.{name}"]}, \
                f"{name} is read by a shell command but not mapped from params.{name} in environment {{}}"


def test_every_variable_of_every_shell_command_is_defined_on_a_first_build(pipeline):
    env = first_build_environment(pipeline)
    undefined = []
    for stage in pipeline.stages:
        defined = set(env) | set(stage.environment)
        post_bodies = [n for body in stage.post.values() for n in body]
        for command, bound in shell_steps(stage.steps) + shell_steps(post_bodies):
            for a, b in SHELL_VAR.findall(CHANGE_REQUEST_GUARD.sub("", command)):
                if (a or b) not in defined | bound:
                    undefined.append(f"{stage.name}: ${a or b} in {command!r}")
    assert not undefined, "empty on a first build (parameters are not environment variables yet):\n" + \
        "\n".join(undefined)
    assert env["DEPLOY_ENV"] == "development" and env["REGISTRY"] == "localhost:32000"
    assert env["IMAGE"] == "devsecops-app:build-1"


def test_the_reader_catches_an_unmapped_parameter(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().replace('    REGISTRY = "${params.REGISTRY}"\n', "", 1))
    model = Pipeline(load_model(broken))
    env = first_build_environment(model)
    push = [c for c, _ in shell_steps(model.stage("Push").steps)]
    assert "REGISTRY" not in env and any("$REGISTRY" in c for c in push)


# --- a first build, run -----------------------------------------------------------------------------

def branch_runs(stage, branch, params, env):
    """Whether a stage's when block lets it run (the conditions this Jenkinsfile uses). `branch`
    is BRANCH_NAME, which pipeline-model-definition's BranchConditionalScript compares with the
    pattern (GIT_LOCAL_BRANCH only when BRANCH_NAME is empty, never in a multibranch job): a pull
    request's is PR-<n>, whatever its source branch (CHANGE_BRANCH) or target (CHANGE_TARGET)."""
    def holds(node):
        kind = node["call"]
        if kind == "branch":
            pattern = node["args"][0]
            assert not set(pattern) & set("*?[]"), f"glob patterns are not simulated: {pattern}"
            return pattern == branch
        if kind == "expression":
            body = closure(node)
            assert len(body) == 1 and "return" in body[0], node
            text = body[0]["return"]["expr"]
            assert text.startswith("params."), text
            return bool(params[text.split(".", 1)[1]])
        if kind == "environment":
            return env.get(node["named"]["name"]) == node["named"]["value"]
        if kind == "allOf":
            return all(holds(n) for n in calls(closure(node)))
        if kind == "not":
            (inner,) = calls(closure(node))
            return not holds(inner)
        raise AssertionError(f"when condition not understood: {kind}")
    return all(holds(n) for n in calls(stage.when))


def workspace(tmp_path):
    """A workspace as the agent has it after checkout, outside this checkout (the Checkout stage
    removes reports/); only what the dry runs read is copied."""
    ws = tmp_path / "workspace" / "devsecops-app_main"
    shutil.copytree(ROOT / "scripts", ws / "scripts")
    (ws / "reports").mkdir()
    return ws


def run_first_build(pipeline, tmp_path, branch="main", overrides=None, change_request=None):
    """Every stage that runs on this branch, each sh command in a clean environment holding only what
    Jenkins gives a first build, with scripts/ci-debian.sh in dry-run mode: prints, per command, the
    command the Debian 12 container would run."""
    params = dict(pipeline.defaults(), **(overrides or {}))
    env = dict(JENKINS_BUILTINS, BRANCH_NAME=branch, **(change_request or {}))
    for name, value in pipeline.environment.items():
        env[name] = gstring_value(value, params, env)
    ws = workspace(tmp_path)
    secrets = {"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "registry-secret-value",
               "KUBECONFIG": str(tmp_path / "workspace" / "devsecops-app_main@tmp" / "secretFiles" / "kubeconfig"),
               "SONAR_HOST_URL": "http://sonarqube.local", "SONAR_AUTH_TOKEN": "sonar-secret-value"}
    ran = []
    for stage in pipeline.stages:
        if not branch_runs(stage, branch, params, env):
            continue
        stage_env = dict(env)
        for name, value in stage.environment.items():
            stage_env[name] = gstring_value(value, params, stage_env)
        for command, bound in shell_steps(stage.steps):
            base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WORKSPACE": str(ws),
                    "CI_DEBIAN_DRY_RUN": "1", "CI_CACHE_DIR": str(tmp_path / "cache"),
                    **stage_env, **{k: v for k, v in secrets.items() if k in bound}}
            # What the pushes printed: each image's digest, which the deploy reads.
            if "cat reports/pushed-image" in command:
                (ws / "reports" / "pushed-image").write_text(f"localhost:32000/devsecops-app@sha256:{'ab' * 32}\n")
            if "cat reports/pushed-loadtest-image" in command:
                (ws / "reports" / "pushed-loadtest-image").write_text(
                    f"localhost:32000/devsecops-loadtest@sha256:{'ab' * 32}\n")
            (ws / "reports").mkdir(exist_ok=True)
            out = subprocess.run(["bash", "-c", command], cwd=ws, env=base, capture_output=True, text=True,
                                 timeout=60)
            assert out.returncode == 0, f"{stage.name}: {command}\n{out.stderr}"
            redirected = re.search(r">\s*(\S+)$", command)
            ran.append((stage.name, command, (ws / redirected.group(1)).read_text() if redirected else out.stdout))
    return ran, ws


def inner_command(docker_line):
    words = shlex.split(docker_line)
    assert words[:2] == ["docker", "run"], docker_line
    at = words.index("--inside")
    assert words[at - 1] == "scripts/ci-debian.sh" and words[at - 2].startswith("devsecops-ci:")
    return words, words[at + 1:]


def test_a_first_build_of_main_runs_every_stage_command_with_its_values(pipeline, tmp_path):
    ran, ws = run_first_build(pipeline, tmp_path)
    stages = [name for name, _, _ in ran]
    assert "Production approval" not in stages and "SonarQube analysis" in stages
    assert stages.index("Deploy") < stages.index("Promote")
    inner = {}
    for stage, command, stdout in ran:
        if command == "rm -rf reports":
            continue
        line = stdout if "scripts/ci-debian.sh" in command else ""
        assert line, f"{stage}: {command} does not run in the Debian 12 container"
        words, args = inner_command(line)
        assert "" not in args, f"{stage}: an empty argument reached {args}"
        inner.setdefault(stage, []).append((words, args))
    deploy = inner["Deploy"][0][1]
    assert deploy[:2] == ["scripts/deploy.sh", "development"], deploy
    assert deploy[3] == f"localhost:32000/devsecops-app@sha256:{'ab' * 32}"
    assert inner["Promote"][0][1][:2] == ["scripts/promote.sh", "development"]
    # The load-test image is built, scanned, pushed and deployed beside the service's, and its Job
    # runs after the deploy (development and staging only).
    assert inner["Image"][1][1] == ["scripts/build-image.sh", "--loadtest", "devsecops-loadtest:build-1"]
    assert inner["Image scan"][1][1][-3:] == ["--out", "reports/image-scan-loadtest", "devsecops-loadtest:build-1"]
    assert inner["Push"][1][1] == ["scripts/push-image.sh", "devsecops-loadtest:build-1",
                                   "localhost:32000/devsecops-loadtest:build-1"]
    assert deploy[4:6] == ["--loadtest-image", f"localhost:32000/devsecops-loadtest@sha256:{'ab' * 32}"], deploy
    assert inner["Load test"][0][1] == ["scripts/load-test.sh", "development", "--timeout", "15m"]
    assert stages.index("Promote") < stages.index("Load test")
    push = inner["Push"][0][1]
    assert push == ["scripts/push-image.sh", "devsecops-app:build-1", "localhost:32000/devsecops-app:build-1"]
    words = inner["Push"][0][0]
    assert "REGISTRY_PASSWORD" in words and "registry-secret-value" not in " ".join(words), \
        "credentials reach the container by name, never on its command line"
    sonar_words = inner["SonarQube analysis"][0][0]
    assert {"SONAR_HOST_URL", "SONAR_AUTH_TOKEN", "SONAR_SCANNER_HOME"} <= set(sonar_words)
    assert "sonar-secret-value" not in " ".join(sonar_words)
    kube = inner["Deploy"][0][0]
    assert "KUBECONFIG" in kube and f"{ws.parent}:{ws.parent}" in kube, "the credential file beside the workspace is mounted"


def test_feature_branches_neither_analyse_nor_deploy(pipeline, tmp_path):
    ran, _ = run_first_build(pipeline, tmp_path, branch="feature-x")
    stages = {name for name, _, _ in ran}
    assert {"Build", "Security scan", "Image scan"} <= stages
    assert not stages & {"SonarQube analysis", "Quality gate", "Push", "Deploy", "Production approval", "Promote"}


def test_the_security_scan_takes_the_policy_from_the_branch_the_change_goes_into(pipeline, tmp_path):
    """A change request is gated by its target's policy, a branch by main's (pipeline/README.md)."""
    def scan_args(**kwargs):
        ran, _ = run_first_build(pipeline, tmp_path / str(len(kwargs)), **kwargs)
        scans = [inner_command(out)[1] for stage, _, out in ran if stage == "Security scan"]
        assert len(scans) == 1
        return scans[0]
    # A full ref: a tag named origin/main cannot stand in for the branch (devsecops refuses short
    # names two refs answer to).
    assert scan_args()[-3:] == ["scan", "--base", "refs/remotes/origin/main"]
    assert scan_args(branch="feature-x")[-2:] == ["--base", "refs/remotes/origin/main"]
    pr = scan_args(branch="PR-7", change_request={"CHANGE_ID": "7", "CHANGE_TARGET": "release-1"})
    assert pr[-2:] == ["--base", "refs/remotes/origin/release-1"]
    # The command as the agent runs it, in a checkout like the one of `checkout scm` (the target is
    # fetched as origin/<target>): a change that relaxes the threshold fails.
    devsecops = os.environ.get("DEVSECOPS_BIN", str(ROOT / "target" / "debug" / "devsecops"))
    upstream, clone = tmp_path / "upstream", tmp_path / "clone"
    git = lambda *args, cwd=upstream: subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)
    upstream.mkdir()
    git("init", "-q", "-b", "release-1")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (upstream / "devsecops.toml").write_text('[policy]\nfail_on = ["critical", "high"]\n')
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("clone", "-q", str(upstream), str(clone), cwd=tmp_path)
    (clone / "devsecops.toml").write_text('[policy]\nfail_on = ["critical"]\n')
    args = pr[pr.index("target/debug/devsecops") + 1:]
    assert args[0] == "scan"
    out = subprocess.run([devsecops, "gate", *args[1:]], cwd=clone, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "weakening, not approved" in out.stdout and "no longer fails on high" in out.stdout, out.stdout


def test_production_is_promoted_only_after_an_approval(pipeline):
    """Deploy leaves production's blue-green update awaiting promotion; the approval comes between
    it and Promote, so nothing the approver has not seen goes live."""
    params = dict(pipeline.defaults(), DEPLOY_ENV="production")
    env = dict(JENKINS_BUILTINS, DEPLOY_ENV="production")
    approval = pipeline.stage("Production approval")
    assert branch_runs(approval, "main", params, env)
    assert not branch_runs(approval, "main", pipeline.defaults(), dict(JENKINS_BUILTINS, DEPLOY_ENV="staging"))
    timeouts = calls(approval.steps, "timeout")
    assert timeouts and calls(closure(timeouts[0]), "input"), "the input has a time limit"
    names = [s.name for s in pipeline.stages]
    assert names.index("Deploy") + 1 == names.index("Production approval") == names.index("Promote") - 1
    for stage in ("Deploy", "Promote"):
        assert branch_runs(pipeline.stage(stage), "main", params, env)
    promote = [c for c, _ in shell_steps(pipeline.stage("Promote").steps)]
    assert promote == ['scripts/ci-debian.sh scripts/promote.sh "$DEPLOY_ENV" --timeout 10m']


# Every kind of build the multibranch job makes (k8s/platform/jenkins-values.yaml: the repository's
# branches and its own pull requests, merged with their target), as BRANCH_NAME and the CHANGE_*
# variables github-branch-source sets; a pull request from a branch named main included.
BUILDS = {
    "main": {},
    "feature-x": {},
    "release-1": {},
    "PR-7": {"CHANGE_ID": "7", "CHANGE_TARGET": "main", "CHANGE_BRANCH": "feature-x"},
    "PR-8": {"CHANGE_ID": "8", "CHANGE_TARGET": "release-1", "CHANGE_BRANCH": "main"},
}
RELEASING_STAGES = {"Push", "Deploy", "Production approval", "Promote"}


def production_stages(model, branch, change_request):
    """The stages that push or deploy when a build of `branch` is started with DEPLOY_ENV=production."""
    params = dict(model.defaults(), DEPLOY_ENV="production", DEPLOY=True)
    env = dict(JENKINS_BUILTINS, BRANCH_NAME=branch, **change_request)
    for name, value in model.environment.items():
        env[name] = gstring_value(value, params, env)
    assert env["DEPLOY_ENV"] == "production"
    return [s.name for s in model.stages if s.name in RELEASING_STAGES and branch_runs(s, branch, params, env)]


def test_production_is_deployed_from_main_only(pipeline, tmp_path):
    for branch, change_request in BUILDS.items():
        ran = production_stages(pipeline, branch, change_request)
        if branch == "main":
            assert ran == ["Push", "Deploy", "Production approval", "Promote"], ran
        else:
            assert ran == [], f"a build of {branch} {change_request} would push or deploy: {ran}"
    # The check catches a Deploy stage that lost its branch condition.
    text = JENKINSFILE.read_text()
    deploy = text.index("stage('Deploy')")
    condition = "          branch 'main'\n"
    at = text.index(condition, deploy)
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(text[:at] + text[at + len(condition):])
    model = Pipeline(load_model(broken))
    assert production_stages(model, "feature-x", {}) == ["Deploy"]


# --- where the job's builds come from ---------------------------------------------------------------

def job_script():
    values = yaml.safe_load(JENKINS_VALUES.read_text())
    scripts = {k: yaml.safe_load(v) for k, v in values["controller"]["JCasC"]["configScripts"].items()}
    (job,) = scripts["job"]["jobs"]
    return values, scripts, job["script"]


def fetched_remote_branches(build, refspecs, pr_strategy):
    """The refs/remotes/origin/* names `checkout scm` fetches for a build, as github-branch-source's
    GitHubSCMBuilder sets them: a branch fetches itself, a pull request its head (as PR-<n>) and, merged
    with its target (strategy 1 or 3), the target; then the refSpecs trait's own."""
    change = BUILDS[build]
    if "CHANGE_ID" in change:
        names = {build}
        if pr_strategy in (1, 3):
            names.add(change["CHANGE_TARGET"])
    else:
        names = {build}
    for spec in refspecs:
        match = re.fullmatch(r"\+refs/heads/([\w./-]+):refs/remotes/@\{remote\}/([\w./-]+)", spec)
        assert match, f"refspec not understood: {spec}"
        names.add(match.group(2))
    return names


def test_the_job_builds_pull_requests_of_this_repository_with_what_the_scan_compares_against(pipeline, tmp_path):
    values, scripts, job = job_script()
    assert "github-branch-source" in values["controller"]["installPlugins"]
    # The job script is Groovy (Job DSL): it must parse.
    script = tmp_path / "job.groovy"
    script.write_text(job)
    parsed = subprocess.run([shutil.which("groovy"), str(ROOT / "tests" / "ci" / "parse_groovy.groovy"), str(script)],
                            capture_output=True, text=True, env=groovy_env(), timeout=120)
    assert parsed.returncode == 0, parsed.stderr
    assert re.search(r"\bgithub\s*\{", job), "GitHub's branch source: the git source discovers no pull request"
    pr = re.search(r"gitHubPullRequestDiscovery\s*\{\s*strategyId\((\d)\)\s*\}", job)
    assert pr, "pull requests are discovered"
    assert "gitHubForkDiscovery" not in job, "fork pull requests would run their code on the agent host"
    branches = re.search(r"gitHubBranchDiscovery\s*\{\s*strategyId\((\d)\)\s*\}", job)
    assert branches and branches.group(1) in ("1", "3"), "main (never a pull request's source) is built"
    credentials = {entry[kind]["id"] for d in scripts["credentials"]["credentials"]["system"]["domainCredentials"]
                   for entry in d["credentials"] for kind in entry}
    assert re.search(r"credentialsId\('([\w-]+)'\)", job).group(1) in credentials
    refspecs = re.findall(r"refSpecTemplate\s*\{\s*value\('([^']+)'\)\s*\}", job)
    # Each build's Security scan compares with origin/<its target, else main>: that ref is fetched.
    for build, change_request in BUILDS.items():
        ran, _ = run_first_build(pipeline, tmp_path / build, branch=build, change_request=change_request)
        (scan,) = [inner_command(out)[1] for stage, _, out in ran if stage == "Security scan"]
        base = scan[scan.index("--base") + 1]
        assert base.startswith("refs/remotes/origin/"), scan
        fetched = fetched_remote_branches(build, refspecs, int(pr.group(1)))
        assert base.removeprefix("refs/remotes/origin/") in fetched, f"{build}: the scan reads {base}, the checkout fetches {fetched}"
    # Without the refSpecs trait a branch's build would not have origin/main.
    assert "main" not in fetched_remote_branches("feature-x", [], int(pr.group(1)))


# --- rollback and checkout --------------------------------------------------------------------------

ROLLBACK = 'scripts/ci-debian.sh scripts/rollback.sh "$DEPLOY_ENV"'


@pytest.mark.parametrize("name", ["Deploy", "Production approval", "Promote"])
def test_the_deploy_rolls_back_on_its_own_failure_abort_or_timeout_only(pipeline, name):
    """From the deploy to the end of the promotion the environment is unfinished: a failure, abort
    or timeout of any of these stages (a refused approval aborts) returns it to the revision live
    before. The time limits sit inside the stages, so their expiry reaches the stage's post."""
    stage = pipeline.stage(name)
    assert set(stage.post) == {"failure", "aborted"}, "a timeout ends the stage as ABORTED"
    for condition in ("failure", "aborted"):
        commands = shell_steps(stage.post[condition])
        assert [c for c, _ in commands] == [ROLLBACK]
        assert "KUBECONFIG" in commands[0][1]
    limited = calls(stage.steps, "timeout") + [t for c in calls(stage.steps, "withCredentials")
                                               for t in calls(closure(c), "timeout")]
    assert limited, f"{name} has no time limit inside the stage"


def test_no_other_failure_rolls_anything_back(pipeline):
    rollbacks_elsewhere = [c for name, body in pipeline.post.items() for c, _ in shell_steps(body)
                           if "rollback" in c]
    rollbacks_elsewhere += [c for s in pipeline.stages if s.name not in ("Deploy", "Production approval", "Promote")
                            for body in s.post.values() for c, _ in shell_steps(body) if "rollback" in c]
    assert not rollbacks_elsewhere, "a failure of another stage must not roll anything back"


def test_checkout_clears_the_reused_workspace_and_lays_out_the_advisory_database(pipeline):
    steps = pipeline.stage("Checkout").steps
    assert steps[0]["call"] == "checkout"
    commands = [c for c, _ in shell_steps(steps)]
    assert commands[0] == "rm -rf reports", "the revision record of an earlier build must not survive checkout"
    assert "scripts/ci-debian.sh scripts/fetch-shared.sh ../shared" in commands
    # with-tools.sh reads the snapshot from ../shared/advisory-db (scripts/lib.sh ADVISORY_DB_SRC).
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    assert "../shared/advisory-db" in lib


def test_every_stage_command_runs_in_the_debian_12_container(pipeline):
    for stage in pipeline.stages:
        bodies = [stage.steps] + list(stage.post.values())
        for command, _ in [c for body in bodies for c in shell_steps(body)]:
            if command != "rm -rf reports":
                assert command.startswith("scripts/ci-debian.sh "), f"{stage.name}: {command}"


# --- the Jenkins and SonarQube values ---------------------------------------------------------------

def jcasc():
    values = yaml.safe_load(JENKINS_VALUES.read_text())
    return values, {k: yaml.safe_load(v) for k, v in values["controller"]["JCasC"]["configScripts"].items()}


def test_the_scanner_and_the_controller_use_one_sonarqube_name_the_ingress_serves():
    _, scripts = jcasc()
    install = scripts["sonar"]["unclassified"]["sonarGlobalConfiguration"]["installations"][0]
    host = re.match(r"^https?://([^/:]+)", install["serverUrl"]).group(1)
    assert not host.endswith(".svc.cluster.local") and not host.endswith(".svc"), \
        "a cluster name does not resolve on the agent host, where the scanner runs"
    sonar = yaml.safe_load(SONAR_VALUES.read_text())
    assert host in [h["name"] for h in sonar["ingress"]["hosts"]]
    text = JENKINS_VALUES.read_text()
    assert "controller.hostAliases[0].hostnames[0]=" + host in text, "how the controller resolves it is documented"


def test_the_quality_gate_webhook_is_signed_with_a_defined_secret():
    values, scripts = jcasc()
    install = scripts["sonar"]["unclassified"]["sonarGlobalConfiguration"]["installations"][0]
    secret_id = install["webhookSecretId"]
    strings = [c["string"] for d in scripts["credentials"]["credentials"]["system"]["domainCredentials"]
               for c in d["credentials"] if "string" in c]
    entry = next(s for s in strings if s["id"] == secret_id)
    key = re.fullmatch(r"\$\{jenkins-credentials-([\w-]+)\}", entry["secret"]).group(1)
    assert {"name": "jenkins-credentials", "keyName": key} in values["controller"]["additionalExistingSecrets"]
    webhook = (ROOT / "k8s" / "platform" / "sonarqube-webhook.sh").read_text()
    assert f"jsonpath={{.data.{key}}}" in webhook, "the webhook script reads the secret Jenkins checks"


def test_sonarqube_runs_on_the_postgresql_beside_it():
    sonar = yaml.safe_load(SONAR_VALUES.read_text())
    jdbc = sonar["jdbcOverwrite"]
    assert jdbc["enabled"] is True
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "platform" / "sonarqube-postgresql.yaml").read_text()) if d]
    service = next(d for d in docs if d["kind"] == "Service")
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    url = re.fullmatch(r"jdbc:postgresql://([\w.-]+):(\d+)/(\w+)", jdbc["jdbcUrl"])
    assert url, jdbc["jdbcUrl"]
    assert url.group(1).split(".")[0] == service["metadata"]["name"]
    assert int(url.group(2)) == service["spec"]["ports"][0]["port"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_DB"]["value"] == url.group(3)
    assert env["POSTGRES_USER"]["value"] == jdbc["jdbcUsername"]
    pod = statefulset["spec"]["template"]["spec"]
    password_file = Path(env["POSTGRES_PASSWORD_FILE"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(password_file.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert (volume["secret"]["secretName"], password_file.name) == (jdbc["jdbcSecretName"], jdbc["jdbcSecretPasswordKey"])
    assert service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert "jdbcPassword" not in jdbc, "the password comes from the Secret only"
    # Only SonarQube's pods reach it: the chart's selector labels are app: <chart name> and
    # release: <release name> (helm-chart-sonarqube templates/_helpers.tpl sonarqube.selectorLabels).
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    release = re.search(r"release (\S+) sonarqube/sonarqube ", (ROOT / "k8s" / "microk8s" / "setup.sh").read_text())
    assert release, "setup.sh installs the SonarQube chart"
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed == {"app": "sonarqube", "release": release.group(1)}
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [service["spec"]["ports"][0]["port"]]


def test_the_postgresql_manifest_is_valid_kubernetes():
    tool = shutil.which("kubernetes-validate") or str(Path(os.sys.executable).parent / "kubernetes-validate")
    assert os.access(tool, os.X_OK), "kubernetes-validate is required (scripts/requirements-test.txt)"
    out = subprocess.run([tool, "--strict", "-k", "1.30.0", str(ROOT / "k8s" / "platform" / "sonarqube-postgresql.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_suppressions_in_the_platform_manifests_carry_an_owner_and_a_live_expiry():
    """scripts/test.sh checks the chart's; these are the platform's."""
    import datetime
    today = datetime.date.today().isoformat()
    found = 0
    for path in sorted((ROOT / "k8s" / "platform").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for key, value in ((doc or {}).get("metadata", {}).get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    found += 1
                    match = re.search(r"owner: [\w-]+; expires: (\d{4}-\d{2}-\d{2})$", value)
                    assert match, f"{path.name} {key}: no owner and expiry"
                    assert match.group(1) >= today, f"{path.name} {key}: expired on {match.group(1)}"
    assert found >= 1


def test_the_scan_stages_say_at_once_when_the_advisory_database_is_missing(tmp_path):
    """Before installing anything (minutes on a fresh agent), scripts/with-tools.sh checks the snapshot."""
    marker = tmp_path / "ran"
    out = subprocess.run([ROOT / "scripts" / "with-tools.sh", "touch", str(marker)], capture_output=True, text=True,
                         env=dict(os.environ, DEVSECOPS_ADVISORY_DB=str(tmp_path / "missing")), timeout=30)
    assert out.returncode == 2 and "scripts/fetch-shared.sh" in out.stderr, out.stderr
    assert "==>" not in out.stderr, "nothing was installed first"
    assert not marker.exists()
