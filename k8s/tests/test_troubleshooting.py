"""Every command of docs/troubleshooting.md exists as written: each ```sh block is parsed with shfmt
(mvdan/sh, the same parser tests/nix uses), and every simple command in it, inside pipelines,
lists and command substitutions, is checked against the program it names:

- kubectl and helm (the pinned binaries on PATH), devsecops-app and devsecops (this revision's
  builds: DEVSECOPS_APP_BIN, DEVSECOPS_BIN), systemctl, journalctl and ctr: the subcommand chain must
  be one the program's own --help lists, and every flag one that subcommand's (or the global) help
  lists; a flag that takes a value consumes the next word;
- `k3s kubectl` and `k3s ctr` are the tools k3s embeds (k3s-io/k3s `cmd/k3s/main.go` dispatches
  them), checked as kubectl and ctr;
- scripts of this repository (k8s/scripts, scripts): present, executable, and every flag named in
  their --help or usage text;
- programs that cannot be installed here, the Argo Rollouts kubectl plugin and the Argo CD CLI:
  against UPSTREAM, the commands and flags read in their sources (named there);
- anything else (curl, grep, git, pg_restore, ...): on PATH, with every flag in its help text.

A program, subcommand or flag found nowhere fails the test; so does a block shfmt cannot parse.
"""

import functools
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "troubleshooting.md")
VALUE = "VALUE"  # a word the shell would expand: a variable or a command substitution

# Read in the tools' sources; only what the document uses, each with where it was read.
UPSTREAM = {
    # argoproj/argo-rollouts pkg/kubectl-argo-rollouts/cmd/{abort/abort.go ("abort ROLLOUT_NAME"),
    # undo/undo.go @0321a4b8 ("undo ROLLOUT_NAME", --to-revision int64), status/status.go
    # ("status ROLLOUT_NAME")}; the namespace flag comes from kubectl's genericclioptions
    # (pkg/kubectl-argo-rollouts/options/options.go).
    "kubectl-argo-rollouts": {
        "commands": {("status",): {}, ("abort",): {}, ("undo",): {"--to-revision": True}},
        "global": {"--namespace": True, "-n": True},
    },
    # argoproj/argo-cd cmd/argocd/commands/app.go ("app history APPNAME", "app rollback APPNAME
    # [ID]", "app set APPNAME"), cmd/util/app.go ("--sync-policy": one of none/manual, automated).
    "argocd": {
        "commands": {("app", "history"): {}, ("app", "rollback"): {}, ("app", "set"): {"--sync-policy": True}},
        "global": {},
    },
}
SHELL_BUILTINS = {"cd", "export", "echo", "test"}


def run(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


# --- the document ----------------------------------------------------------------------------------

def shell_blocks(path=DOC):
    with open(path) as f:
        text = f.read()
    return [(text[:m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```sh\n(.*?)```", text, re.S)]


def parse(script):
    out = subprocess.run(["shfmt", "--language-dialect", "bash", "--to-json"], input=script,
                         capture_output=True, text=True)
    assert out.returncode == 0, f"shfmt cannot parse {script!r}: {out.stderr}"
    return json.loads(out.stdout)


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def word_text(word):
    """A word as the shell reads it, with every expansion replaced by VALUE."""
    text = ""
    for part in word.get("Parts", []):
        kind = part["Type"]
        if kind in ("Lit", "SglQuoted"):
            text += part["Value"]
        elif kind == "DblQuoted":
            text += word_text(part)
        else:
            text += VALUE
    return text


def commands(script):
    """Every simple command's words, with the line it starts on (relative to the script)."""
    for node in walk(parse(script)):
        if node.get("Type") == "CallExpr" and node.get("Args"):
            yield node["Pos"]["Line"], [word_text(w) for w in node["Args"]]


# --- programs' own help ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def help_text(*argv):
    return run([*argv, "--help"])


def command_sections(text):
    """The lines of a help's command sections: cobra's "Available Commands:" (kubectl groups them,
    "Basic Commands (Beginner):"), clap's "Commands:", urfave/cli's "COMMANDS:"."""
    lines, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            inside = stripped.endswith(":") and "commands" in stripped.lower()
            continue
        if inside:
            lines.append(line)
    return lines


def subcommands(text):
    names = set()
    for line in command_sections(text):
        match = re.match(r"\s+([a-z][\w-]*(?:, [\w-]+)*)\s", line + " ")
        if match:
            names.update(n.strip() for n in match.group(1).split(","))
    return names


def flags(text):
    """Flag name -> takes a value, from the option lines of a help text: cobra's kubectl style
    (`--namespace='':`, a bool shows =false/=true), cobra's helm style (`--namespace string`),
    clap (`--config <CONFIG>`), urfave/cli (`--namespace value, -n value`), GNU-style help
    (`-o --output=STRING`, `--since=DATE`)."""
    found = {}
    for line in text.splitlines():
        # git's `--[no-]edit` is two flags.
        line = re.sub(r"--\[no-\]([\w-]+)", r"--\1, --no-\1", line.strip())
        if not line.startswith("-"):
            continue
        spec = re.split(r"\s{2,}|:\s|:$", line, maxsplit=1)[0]
        names = re.findall(r"(--?[A-Za-z0-9][\w-]*)(=\S+|\s+(?!-)[^,\s]+)?", spec)
        # One line names one option: its spellings share whether it takes a value.
        takes = any(rest.strip(" =") and rest.strip(" =") not in ("false", "true") for _, rest in names)
        for name, _ in names:
            found[name] = found.get(name, False) or takes
    return found


def check_cobra(program, words, globals_argv):
    """kubectl, helm: subcommands from --help, flags from the chain's help plus the globals."""
    global_flags = flags(run(globals_argv)) if globals_argv else {}
    chain, i, problems = [], 0, []
    known = dict(global_flags)
    known.update(flags(help_text(program)))
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            i += check_flag(program, chain, word, words, i, known, problems)
            continue
        name = cobra_command(program, chain, word)
        if name:
            chain.append(name)
            known = dict(global_flags)
            known.update(flags(help_text(program, *chain)))
        elif not chain:
            problems.append(f"{program}: no command {word!r}")
            break
        i += 1
    return chain, problems


def cobra_command(program, chain, word):
    """The subcommand `word` names under `chain`: listed, or an alias a listed one declares in its
    own help ("Aliases:\n  pod, pods, po"). None when it names none."""
    listed = subcommands(help_text(program, *chain))
    if word in listed:
        return word
    for name in sorted(listed):
        aliases = re.search(r"^Aliases:\n\s*(.+)$", help_text(program, *chain, name), re.M)
        if aliases and word in [a.strip() for a in aliases.group(1).split(",")]:
            return name
    return None


def check_flag(program, chain, word, words, i, known, problems):
    """Returns how many words the flag takes (1, or 2 with a separate value)."""
    name, has_value = word.split("=", 1)[0], "=" in word
    if name not in known:
        problems.append(f"{program} {' '.join(chain)}: no flag {name}")
        return 1
    return 1 if has_value or not known[name] else 2


def check_generic(program, chain_depth, words, help_argv, is_command=None):
    """clap, systemctl, journalctl, ctr, git and plain programs: the first `chain_depth` non-flag
    words must be subcommands the help lists (or `is_command` accepts), every flag must be in the
    help of the chain."""
    problems, chain, i = [], [], 0
    text = run(help_argv(chain))
    known = flags(text)
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word != "-":
            i += check_flag(program, chain, word, words, i, known, problems)
            continue
        if len(chain) < chain_depth:
            listed = word in subcommands(text) or re.search(rf"^\s+{re.escape(word)}\s", text, re.M)
            if not (listed or (is_command and is_command(word))):
                problems.append(f"{program}: no command {word!r}")
                break
            chain.append(word)
            text = run(help_argv(chain))
            known.update(flags(text))
        i += 1
    return problems


BUILDS = {"devsecops-app": "DEVSECOPS_APP_BIN", "devsecops": "DEVSECOPS_BIN"}


def binary(program):
    if program in BUILDS:
        path = os.environ.get(BUILDS[program], "")
        assert os.access(path, os.X_OK), f"{BUILDS[program]}={path!r}: this revision's {program} is needed"
        return path
    path = shutil.which(program)
    assert path, f"{program} is not installed: it cannot be checked"
    return path


def check_upstream(tool, words):
    spec = UPSTREAM[tool]
    for chain, chain_flags in spec["commands"].items():
        if tuple(words[:len(chain)]) == chain:
            known = {**spec["global"], **chain_flags}
            problems, i = [], len(chain)
            while i < len(words):
                if words[i].startswith("-"):
                    i += check_flag(tool, list(chain), words[i], words, i, known, problems)
                else:
                    i += 1
            return problems
    return [f"{tool}: {' '.join(words[:2])!r} is none of the commands read upstream {sorted(spec['commands'])}"]


def check_script(path, words):
    full = os.path.join(ROOT, path)
    if not (os.path.isfile(full) and os.access(full, os.X_OK)):
        return [f"{path} is not an executable script of this repository"]
    usage = run([full, "--help"])
    with open(full) as f:
        source = f.read()
    return [f"{path}: no flag {w.split('=')[0]}" for w in words
            if w.startswith("--") and w.split("=")[0] not in usage and f'"{w.split("=")[0]}"' not in source]


def check(words):
    """Problems with one simple command (an empty list when it exists as written)."""
    while words and words[0] in ("sudo",):
        words = words[1:]
    if not words:
        return []
    program, args = words[0], words[1:]
    if program == "k3s":
        assert args and args[0] in ("kubectl", "ctr"), f"k3s {args[:1]}: not a tool k3s embeds that is checked here"
        return check([args[0], *args[1:]])
    if "/" in program and not program.startswith("/"):
        return check_script(program, args)
    if program in SHELL_BUILTINS:
        return []
    if program == "argocd":
        return check_upstream("argocd", args)
    if program == "kubectl" and args[:2] == ["argo", "rollouts"]:
        return check_upstream("kubectl-argo-rollouts", args[2:])
    if program in ("kubectl", "helm"):
        globals_argv = [binary("kubectl"), "options"] if program == "kubectl" else None
        return check_cobra(binary(program), args, globals_argv)[1]
    path = binary(program)
    if program in BUILDS:
        return check_generic(program, 1, args, lambda chain: [path, *chain, "--help"])
    if program in ("systemctl",):
        return check_generic(program, 1, args, lambda chain: [path, "--help"])
    if program == "ctr":
        return check_generic(program, 2, args, lambda chain: [path, *chain, "--help"])
    if program == "git":
        # `git -h` lists the common commands only; every command answers `-h` with its usage.
        return check_generic(program, 1, args, lambda chain: [path, *chain, "-h"],
                             lambda word: run([path, word, "-h"]).startswith(f"usage: git {word}"))
    if program == "curl":
        return check_generic(program, 0, args, lambda chain: [path, "--help", "all"])
    return check_generic(program, 0, args, lambda chain: [path, "--help"])


# --- the tests -------------------------------------------------------------------------------------

def test_every_command_in_the_troubleshooting_guide_exists():
    blocks = shell_blocks()
    assert len(blocks) >= 15, "the guide's code blocks were not found"
    problems, checked = [], set()
    for line, script in blocks:
        for offset, words in commands(script):
            for problem in check(words):
                problems.append(f"docs/troubleshooting.md:{line + offset - 1}: {' '.join(words)}: {problem}")
            checked.add(words[0] if words[0] not in ("sudo", "k3s") else words[1])
    assert not problems, "\n".join(problems)
    # What the guide promises to cover, by the programs it uses.
    assert {"kubectl", "helm", "devsecops-app", "devsecops", "systemctl", "journalctl", "ctr", "argocd",
            "k8s/scripts/restore-cnpg.sh", "k8s/scripts/restore-sqlite.py", "pg_restore"} <= checked, checked


def test_the_guide_covers_each_topic():
    with open(DOC) as f:
        headings = [line[3:].strip() for line in f if line.startswith("## ")]
    assert headings == ["Pods stay Pending", "Images on the air-gapped appliance", "High memory",
                        "The service does not answer", "Database down or full",
                        "Slow SQLite writes while logs are busy", "Restoring a backup",
                        "Rolling back", "Restarting the monitoring stack", "The security gate fails"]
    with open(DOC) as f:
        text = f.read()
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        metrics = f.read()
    # The 503 reasons the guide lists are the service's (app_db_errors_total in the metric catalog).
    reasons = re.search(r"`app_db_errors_total` \| counter \| reason \| .*?\((.*?)\)", metrics).group(1)
    for reason in re.findall(r"`(\w+)`", reasons):
        assert f"`{reason}`" in text, reason
    for metric in re.findall(r"\b((?:app|http)_[a-z_]+)\b", text):
        assert f"`{metric}`" in metrics or metric.startswith("app_db_") or metric == "app_backup_", metric


@pytest.mark.parametrize("command,problem", [
    ("kubectl -n x get pods --bogus", "no flag --bogus"),
    ("kubectl -n x gett pods", "no command 'gett'"),
    ("helm rollback devsecops-app 4 --wat", "no flag --wat"),
    ("devsecops-app backup --directory /b", "no flag --directory"),
    ("devsecops-app back-up --dir /b", "no command 'back-up'"),
    ("devsecops gate --bogus", "no flag --bogus"),
    ("systemctl restrat loki", "no command 'restrat'"),
    ("journalctl --unitt loki", "no flag --unitt"),
    ("k3s ctr --namespace k8s.io imagez ls", "no command 'imagez'"),
    ("kubectl argo rollouts rollback devsecops-app", "none of the commands read upstream"),
    ("kubectl argo rollouts undo devsecops-app --to-rev 3", "no flag --to-rev"),
    ("argocd app rollback devsecops-app-production --prune", "no flag --prune"),
    ("k8s/scripts/restore-cnpg.sh --new-clusters x", "no flag --new-clusters"),
    ("k8s/scripts/restore.sh --dry-run", "not an executable script"),
    ("curl --no-such-flag http://x", "no flag --no-such-flag"),
])
def test_the_check_finds_a_command_that_does_not_exist(command, problem):
    ((_, words),) = list(commands(command))
    found = check(words)
    assert any(problem in p for p in found), found


def test_values_and_placeholders_are_not_taken_for_flags_or_commands():
    (_, words), (_, inner) = commands('kubectl -n "$NS" get pods --chunk-size=10 -o "$(echo wide)"')
    assert inner == ["echo", "wide"], "a command substitution's command is checked too"
    assert words == ["kubectl", "-n", VALUE, "get", "pods", "--chunk-size=10", "-o", VALUE]
    assert check(words) == []


def rust_string_arrays(path, program):
    """The argument arrays app/tests/api/backup.rs hands to `program` (`pg("pg_dump", &args)` with
    `let args = [...]`, or `pg("pg_restore", &[...])`): literals as written, anything else VALUE."""
    with open(path) as f:
        source = f.read()
    arrays = []
    for match in re.finditer(rf'pg\(\s*"{program}",\s*(&\[(.*?)\]|&(\w+))', source, re.S):
        body = match.group(2)
        if body is None:
            body = re.findall(rf"let {match.group(3)} = \[(.*?)\];", source[:match.start()], re.S)[-1]
        items = [item.strip() for item in body.split(",") if item.strip()]
        arrays.append([json.loads(item) if item.startswith('"') else VALUE for item in items])
    return arrays


def test_the_pg_dump_and_pg_restore_the_docs_give_are_the_ones_the_service_tests_run():
    """The external-database backup is documented with exactly the commands app/tests/api/backup.rs
    runs against a real PostgreSQL under write load (files and URLs aside)."""
    tested = {program: rust_string_arrays(os.path.join(ROOT, "app", "tests", "api", "backup.rs"), program)
              for program in ("pg_dump", "pg_restore")}
    assert tested["pg_dump"] and tested["pg_restore"], tested

    def shape(words):
        return [w if w.startswith("-") else VALUE for w in words]
    documented = 0
    for doc in (DOC, os.path.join(ROOT, "docs", "kubernetes.md")):
        for _, script in shell_blocks(doc):
            for _, words in commands(script):
                if words[0] in tested and "--list" not in words:
                    assert shape(words[1:]) in [shape(a) for a in tested[words[0]]], (doc, words, tested[words[0]])
                    documented += 1
    assert documented == 4, "pg_dump and pg_restore in both guides"
