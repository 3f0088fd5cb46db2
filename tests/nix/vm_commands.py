"""The shell commands a NixOS VM test hands to its machines, checked as the test driver runs them.

The driver (nixos/lib/test-driver/src/test_driver/machine/__init__.py, `_execute`) runs each
command as `bash -c 'set -euo pipefail; <command>'`: a pipeline fails when any stage fails, not
only the last. `succeed` and `wait_until_succeeds` want exit status 0, `fail` and
`wait_until_fails` anything else; `execute` returns the status to the script.

Commands are extracted from the script's Python syntax tree once Nix has filled in its
interpolations (tests/nix/vm-tests.nix): string literals, f-strings and concatenations of them, with
each name replaced by what the script last bound it to before the call (any scope: the scripts are
flat), so a string built in a `with` block is read as a constant is; a loop over literal strings
gives one command per string. A value known only when the test runs (a pid, a token, a helper's
parameter) becomes the word RUNTIME_VALUE and is recorded on the command (Command.runtime): its
quoting cannot be checked here, and tests/nix lists the ones each script may use, so a command
cannot hide behind one. A command that is nothing but such a value, and a machine method used other
than by calling it, are errors, never skipped.

Each command is checked by shellcheck (with `set -euo pipefail;` in front, as run) and parsed by
shfmt (mvdan/sh) for the pipeline rules below, which shellcheck does not know because they depend
on how the driver judges the exit status:
  - stderr-into-pipe: under succeed/wait_until_succeeds, a stage that is not the last sends its
    stderr into the pipe, i.e. the test reads an error message from it. If that stage fails as
    expected, pipefail fails the whole command (the Pod Security probe of vm-tests/appliance.nix).
  - early-exit-reader: a later stage may stop reading before the end (grep -q, grep -m, head):
    the writer then dies of SIGPIPE and pipefail turns a match into a failure, or, under fail, a
    failure into a pass.
  - pipeline-under-fail: under fail/wait_until_fails/execute a pipeline fails when any stage
    fails, for any reason; the test cannot tell which. Run it with succeed and assert on the output.
and two that make a wrong command fail here rather than on the first run with KVM:
  - systemctl-show: `systemctl show` must print one named property with --value (or -P), and not a
    list-valued one: systemctl prints those shell-quoted and space-separated (shared/
    bus-print-properties.c, shell_maybe_quote), so a value with `?` or `&` comes back in quotes.
  - unknown-program: every program a command runs must be on the machine it runs on: a shell
    builtin, a store path, or a program of a package the machine installs (NixOS' core packages and
    systemd, the node's environment.systemPackages, k3s when services.k3s is on).
"""

import ast
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

DRIVER_PREFIX = "set -euo pipefail; "
RUNTIME_VALUE = "RUNTIME_VALUE"
POSITIVE = {"succeed", "wait_until_succeeds"}
NEGATIVE = {"fail", "wait_until_fails"}
METHODS = POSITIVE | NEGATIVE | {"execute", "systemctl"}


class ExtractionError(Exception):
    pass


@dataclass
class Command:
    method: str
    text: str
    line: int
    # The machine the command runs on (the receiver's name), and the run-time values in it.
    machine: str = ""
    runtime: tuple = ()

    @property
    def run_as(self):
        return DRIVER_PREFIX + self.text


@dataclass
class Finding:
    command: Command
    rule: str
    message: str
    details: list = field(default_factory=list)

    def __str__(self):
        return f"line {self.command.line}: {self.command.method}({self.command.text!r}): {self.rule}: {self.message}"


class _Resolver:
    """Names as the script binds them: the latest binding before a line (the first one if none
    precedes it: a helper reading a name bound further down)."""

    RUNTIME = object()

    def __init__(self, tree):
        self.bindings = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(target, node.lineno, node.value)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
                self._bind(node.target, node.lineno, None)
            elif isinstance(node, (ast.For, ast.comprehension)):
                choices = None
                if isinstance(node.iter, (ast.Tuple, ast.List)) and node.iter.elts and all(
                        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts):
                    choices = [e.value for e in node.iter.elts]
                line = getattr(node, "lineno", getattr(node.iter, "lineno", 0))
                if isinstance(node.target, ast.Name) and choices is not None:
                    self.bindings.setdefault(node.target.id, []).append((line, ("choices", choices)))
                else:
                    self._bind(node.target, line, None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._bind(node.optional_vars, node.context_expr.lineno, None)
            elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
                args = node.args
                for arg in args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
                    self.bindings.setdefault(arg.arg, []).append((node.lineno, ("runtime",)))
        for values in self.bindings.values():
            values.sort(key=lambda b: b[0])

    def _bind(self, target, line, value):
        if isinstance(target, ast.Name):
            self.bindings.setdefault(target.id, []).append((line, ("expr", value) if value is not None else ("runtime",)))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind(element, line, None)

    def binding(self, name, line):
        found = self.bindings.get(name)
        if not found:
            return None
        before = [b for b in found if b[0] <= line]
        return (before[-1] if before else found[0])[1]


def _alternatives(node, resolver, line, runtime, seen=()):
    """Every text `node` may stand for, run-time values as RUNTIME_VALUE (their source recorded in
    `runtime`). Raises ExtractionError for what is not a string expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        texts = [""]
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts = [value.value]
            elif value.format_spec is None and value.conversion == -1:
                parts = _part(value.value, resolver, line, runtime, seen)
            else:
                runtime.append(ast.unparse(value.value))
                parts = [RUNTIME_VALUE]
            texts = [t + p for t in texts for p in parts]
            if len(texts) > 64:
                raise ExtractionError(f"line {line}: too many commands from one call")
        return texts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _alternatives(node.left, resolver, line, runtime, seen)
        right = _alternatives(node.right, resolver, line, runtime, seen)
        return [a + b for a in left for b in right]
    if isinstance(node, ast.Name):
        binding = resolver.binding(node.id, line)
        if binding and binding[0] == "expr" and node.id not in seen:
            return _alternatives(binding[1], resolver, line, runtime, seen + (node.id,))
        if binding and binding[0] == "choices":
            return list(binding[1])
    raise ExtractionError(f"line {line}: not a command string the check can read: {ast.unparse(node)}")


def _part(node, resolver, line, runtime, seen):
    """An f-string's interpolated value: a string the script spells out, a number, or a run-time value."""
    if isinstance(node, ast.Constant):
        return [str(node.value)]
    try:
        return _alternatives(node, resolver, line, runtime, seen)
    except ExtractionError:
        runtime.append(ast.unparse(node))
        return [RUNTIME_VALUE]


def commands(test_script):
    """Every (method, command) of the script, in order."""
    tree = ast.parse(test_script)
    resolver = _Resolver(tree)
    called = set()
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in METHODS):
            continue
        called.add(id(node.func))
        args = [a for a in node.args]
        args += [k.value for k in node.keywords if k.arg == "command"]
        method = node.func.attr
        if method not in ("succeed", "fail"):  # these two take several commands; the rest one
            args = args[:1]
        if not args:
            raise ExtractionError(f"line {node.lineno}: {method}() without a command")
        machine = node.func.value.id if isinstance(node.func.value, ast.Name) else ast.unparse(node.func.value)
        for arg in args:
            if isinstance(arg, ast.Starred):
                raise ExtractionError(f"line {node.lineno}: {method}(*...): the commands cannot be read statically")
            runtime = []
            texts = _alternatives(arg, resolver, node.lineno, runtime)
            for text in texts:
                if text.strip() == RUNTIME_VALUE:
                    raise ExtractionError(f"line {node.lineno}: {method}({ast.unparse(arg)}): the whole command is known only at run time")
                kind, command = (("execute", f"systemctl {text}") if method == "systemctl" else (method, text))
                found.append(Command(kind, command, node.lineno, machine, tuple(runtime)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in METHODS and id(node) not in called:
            raise ExtractionError(f"line {node.lineno}: {ast.unparse(node)} is used without being called: its commands cannot be read")
    return sorted(found, key=lambda c: c.line)


def shellcheck(cmds):
    """shellcheck on each command as the driver runs it. Commands whose status the test reads as
    failure (fail, wait_until_fails, execute) also get SC2312: a failing $(...) is otherwise masked."""
    findings = []
    for strict, selected in ((False, [c for c in cmds if c.method in POSITIVE]),
                             (True, [c for c in cmds if c.method not in POSITIVE])):
        if not selected:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for i, command in enumerate(selected):
                path = os.path.join(tmp, f"command-{i}.sh")
                with open(path, "w") as f:
                    f.write("#!/usr/bin/env bash\n" + command.run_as + "\n")
                paths[path] = command
            extra = ["--enable=check-extra-masked-returns"] if strict else []
            out = subprocess.run(["shellcheck", "--shell=bash", "--format=json1", *extra, *paths],
                                 capture_output=True, text=True)
            if out.returncode not in (0, 1):
                raise RuntimeError(f"shellcheck failed: {out.stderr}")
            for comment in json.loads(out.stdout)["comments"]:
                findings.append(Finding(paths[comment["file"]], f"SC{comment['code']}", comment["message"]))
    return findings


# Operator numbers differ between shfmt versions: learn them from shfmt itself.
_PROBES = {"pipe": "a | b", "pipe_all": "a |& b", "dup_out": "a >&2"}
_ops = {}


def _shfmt(text):
    out = subprocess.run(["shfmt", "--language-dialect", "bash", "--to-json"], input=text,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise ExtractionError(f"shfmt cannot parse {text!r}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def _operators():
    if not _ops:
        for name, probe in _PROBES.items():
            stmt = _shfmt(probe)["Stmts"][0]
            _ops[name] = stmt["Redirs"][0]["Op"] if name == "dup_out" else stmt["Cmd"]["Op"]
    return _ops


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _stages(stmt, ops):
    """The statements of a pipeline, left to right, each with whether its stderr joins the pipe."""
    cmd = stmt.get("Cmd") or {}
    if cmd.get("Type") == "BinaryCmd" and cmd["Op"] in (ops["pipe"], ops["pipe_all"]):
        left = _stages(cmd["X"], ops)
        if cmd["Op"] == ops["pipe_all"]:
            left[-1] = (left[-1][0], True)
        return left + _stages(cmd["Y"], ops)
    return [(stmt, False)]


def _literal(word):
    parts = word.get("Parts", [])
    if all(p.get("Type") in ("Lit", "SglQuoted") for p in parts):
        return "".join(p.get("Value", "") for p in parts)
    return None


def _inner_stmts(stmt):
    """The statements a stage runs itself ({ ...; }, ( ... ), if/while bodies), not those of a
    command substitution, whose output the stage only reads."""
    yield stmt
    cmd = stmt.get("Cmd") or {}
    stack = [v for k, v in cmd.items() if k not in ("Pos", "End", "Type")]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("Type") in ("CmdSubst", "ProcSubst", "ArithmExp"):
                continue
            if "Cmd" in node and ("Redirs" in node or "Pos" in node):
                yield from _inner_stmts(node)
            else:
                stack.extend(v for k, v in node.items() if k not in ("Pos", "End"))


def _stderr_to_stdout(stmt, ops):
    return any(r.get("Op") == ops["dup_out"] and (r.get("N") or {}).get("Value") == "2"
               and _literal(r.get("Word", {})) == "1"
               for inner in _inner_stmts(stmt) for r in inner.get("Redirs", []))


# Commands that run the next word as the program, and how many arguments their options take.
_WRAPPERS = {"timeout": {"-s": 1, "--signal": 1, "-k": 1, "--kill-after": 1}, "env": {"-u": 1, "--unset": 1},
             "command": {}, "exec": {}, "nohup": {}, "nice": {"-n": 1, "--adjustment": 1}, "stdbuf": {},
             "setsid": {}, "time": {}}


def _program(words):
    """(program, its arguments) of a simple command's literal words, past the wrappers that run
    another (timeout 5 grep ... is grep). None for a program the check cannot read."""
    words = list(words)
    while words and words[0] is not None:
        name = words[0].rsplit("/", 1)[-1]
        if name not in _WRAPPERS:
            return name, words[1:]
        rest, takes = words[1:], _WRAPPERS[name]
        while rest and rest[0] is not None and (rest[0].startswith("-") or (name == "env" and "=" in rest[0])):
            option = rest.pop(0)
            for _ in range(takes.get(option, 0)):
                rest = rest[1:]
        if name == "timeout" and rest:
            rest = rest[1:]  # the duration
        if name == "command" and words[1:2] in (["-v"], ["-V"]):
            return None
        words = rest
    return None


def _words(stmt):
    cmd = stmt.get("Cmd") or {}
    if cmd.get("Type") != "CallExpr" or not cmd.get("Args"):
        return None
    return [_literal(w) for w in cmd["Args"]]


def _reads_partially(stmt):
    words = _words(stmt)
    found = _program(words) if words else None
    if not found:
        return None
    name, args = found
    options = [w for w in args if w and w.startswith("-")]
    if name in ("grep", "egrep", "fgrep", "rg"):
        for option in options:
            if option in ("--quiet", "--silent", "--files-with-matches", "--files-without-match") or option.startswith("--max-count"):
                return f"{name} {option}"
            if not option.startswith("--") and any(flag in option[1:] for flag in "qlLm"):
                return f"{name} {option}"
    if name == "head":
        return "head"
    # sed's q/Q commands and awk's exit stop reading the input.
    scripts = [w for w in args if w is not None and not w.startswith("-")][:1]
    if name == "sed" and any(re.search(r"(^|[;{}\s\d/$])[qQ](\s*\d*)?($|[;}\s])", w) for w in scripts):
        return "sed q"
    if name in ("awk", "gawk", "mawk") and any(re.search(r"\bexit\b", w) for w in scripts):
        return f"{name} exit"
    return None


# List-valued unit properties (D-Bus `as` and friends): systemctl show prints them shell-quoted
# and space-separated, --value or not.
_LIST_PROPERTIES = {"Environment", "EnvironmentFiles", "PassEnvironment", "UnsetEnvironment", "LoadCredential",
                    "SetCredential", "ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop",
                    "ExecStopPost", "ExecCondition", "Names", "Requires", "Wants", "After", "Before", "WantedBy",
                    "RequiredBy", "Conflicts", "BindsTo", "PartOf", "Triggers", "TriggeredBy", "ReadWritePaths",
                    "ReadOnlyPaths", "InaccessiblePaths", "SupplementaryGroups", "SystemCallFilter", "DropInPaths",
                    "Documentation", "Listen", "StateDirectory", "RuntimeDirectory", "CacheDirectory", "LogsDirectory",
                    "ConfigurationDirectory"}


def _systemctl_show(stmt):
    """What is wrong with a `systemctl show`, or None."""
    words = _words(stmt)
    found = _program(words) if words else None
    if not found or found[0] != "systemctl":
        return None
    args = found[1]
    verbs = [w for w in args if w is not None and not w.startswith("-")]
    if not verbs or verbs[0] != "show":
        return None
    properties, value, i = [], False, 0
    while i < len(args):
        word = args[i] or ""
        if word in ("-p", "--property", "-P"):
            properties += (args[i + 1] or "").split(",") if i + 1 < len(args) else []
            value = value or word == "-P"
            i += 1
        elif word.startswith("--property="):
            properties += word.split("=", 1)[1].split(",")
        elif word.startswith(("-p", "-P")) and not word.startswith("--"):
            properties += word[2:].split(",")
            value = value or word.startswith("-P")
        elif word == "--value":
            value = True
        i += 1
    if len(properties) != 1:
        return f"names {len(properties)} properties: name exactly one, with --property=NAME --value"
    if not value:
        return f"prints {properties[0]}=...: add --value (or use -P) and read the bare value"
    if properties[0] in _LIST_PROPERTIES:
        return (f"{properties[0]} is a list, printed shell-quoted and space-separated: read what the test means "
                "from the running process (/proc/PID/environ, /proc/PID/cmdline) or the unit file instead")
    return None


def pipeline_findings(cmds):
    ops = _operators()
    findings = []
    for command in cmds:
        pipes = [node for node in _walk(_shfmt(command.run_as))
                 if node.get("Type") == "BinaryCmd" and node.get("Op") in (ops["pipe"], ops["pipe_all"])]
        # `a | b | c` nests; judge each whole pipeline once.
        inner = {id(pipe[side].get("Cmd")) for pipe in pipes for side in ("X", "Y")}
        for node in pipes:
            if id(node) in inner:
                continue
            stages = _stages({"Cmd": node}, ops)
            if command.method not in POSITIVE:
                findings.append(Finding(command, "pipeline-under-fail",
                                        "passes when any stage fails, for any reason: run it with succeed and assert on its output in Python"))
            if command.method in POSITIVE:
                for stmt, joined in stages[:-1]:
                    if joined or _stderr_to_stdout(stmt, ops):
                        findings.append(Finding(command, "stderr-into-pipe",
                                                "a stage's error output is read through the pipe, so that stage is expected to fail, and pipefail fails the command when it does: use fail() and assert on its output"))
            for stmt, _ in stages[1:]:
                reader = _reads_partially(stmt)
                if reader:
                    findings.append(Finding(command, "early-exit-reader",
                                            f"`{reader}` may stop reading early; the writer then dies of SIGPIPE and pipefail decides the outcome: capture the output and assert in Python"))
    return findings


# Programs on the machines, by the package that puts them on PATH. Every NixOS machine has the core
# packages (nixos/modules/config/system-path.nix, corePackageNames: coreutils-full, curl, gawk,
# getent, gnugrep, gnused, procps, util-linux, ...) and systemd (nixos/modules/system/boot/
# systemd.nix: environment.systemPackages = [ systemd ]). Only the programs the VM tests may call
# are listed; a package a node installs that is missing here is an error of the check.
CORE_PROGRAMS = {
    "coreutils-full": {"base64", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "dirname", "du", "echo",
                       "env", "false", "head", "id", "ln", "ls", "mkdir", "mktemp", "mv", "nproc", "printf", "readlink",
                       "realpath", "rm", "rmdir", "seq", "sha256sum", "sleep", "sort", "stat", "tail", "tee", "test",
                       "timeout", "touch", "tr", "true", "uniq", "wc", "[", "stdbuf", "nohup", "nice", "sync", "uname"},
    "curl": {"curl"}, "diffutils": {"cmp", "diff"}, "findutils": {"find", "xargs"}, "gawk": {"awk", "gawk"},
    "getent": {"getent"}, "gnugrep": {"grep", "egrep", "fgrep"}, "gnused": {"sed"}, "gnutar": {"tar"},
    "gzip": {"gzip", "gunzip", "zcat"}, "xz": {"xz", "unxz"}, "zstd": {"zstd"}, "less": {"less"},
    "netcat": {"nc"}, "procps": {"kill", "pgrep", "pidof", "pkill", "ps", "sysctl", "watch"},
    "util-linux": {"findmnt", "flock", "logger", "lsblk", "mount", "nsenter", "script", "setsid", "umount"},
    "which": {"which"},
    "systemd": {"busctl", "journalctl", "loginctl", "systemctl", "systemd-analyze", "systemd-cat", "systemd-run"},
}
PACKAGE_PROGRAMS = {
    "curl": {"curl"}, "jq": {"jq"}, "git": {"git"}, "nix": {"nix", "nix-build", "nix-store", "nix-instantiate"},
    "kubernetes-helm": {"helm"}, "k3s": {"k3s"}, "devsecops": {"devsecops"}, "cargo-audit": {"cargo-audit"},
    "trivy": {"trivy"},
}


def machine_programs(nodes):
    """{machine: programs on its PATH} from each node's evaluated configuration: its
    environment.systemPackages (package names) and whether services.k3s is on (the k3s module adds
    its package, nixos/modules/services/cluster/rancher/default.nix)."""
    core = set().union(*CORE_PROGRAMS.values())
    programs = {}
    for name, node in nodes.items():
        packages = list(node["packages"]) + (["k3s"] if node.get("k3s") else [])
        unknown = [p for p in packages if p not in PACKAGE_PROGRAMS]
        if unknown:
            raise ExtractionError(f"{name}: packages the check does not know the programs of: {unknown} (PACKAGE_PROGRAMS)")
        programs[name] = core.union(*(PACKAGE_PROGRAMS[p] for p in packages))
    return programs


def _simple_commands(tree):
    """Every simple command of a parsed command line, in $(...) too."""
    for node in _walk(tree):
        if node.get("Type") == "CallExpr" and node.get("Args"):
            yield {"Cmd": node}


def _builtins():
    out = subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def command_findings(cmds, programs=None):
    """systemctl-show on every command; unknown-program where the machines' programs are given
    (machine name: set of program names)."""
    builtins = _builtins()
    everywhere = set.intersection(*programs.values()) if programs else set()
    findings = []
    for command in cmds:
        available = (programs.get(command.machine, everywhere) if programs else None)
        for stmt in _simple_commands(_shfmt(command.run_as)):
            problem = _systemctl_show(stmt)
            if problem:
                findings.append(Finding(command, "systemctl-show", problem))
            if available is None:
                continue
            words = _words(stmt)
            found = _program(words) if words else None
            if found is None:
                if words and words[0] is None:
                    findings.append(Finding(command, "unknown-program", "the program is not a literal word: the check cannot tell what runs"))
                continue
            name = found[0]
            word = next(w for w in words if w is not None and w.rsplit("/", 1)[-1] == name)
            absolute = [w for w in (words[0], word) if w and w.startswith("/")]
            if absolute:
                for path in absolute:
                    if not path.startswith(("/nix/store/", "/run/current-system/sw/bin/", "/run/wrappers/bin/")):
                        findings.append(Finding(command, "unknown-program", f"{path}: not a path a NixOS machine has"))
            elif name not in builtins and name not in available:
                findings.append(Finding(command, "unknown-program",
                                        f"`{name}` is on no path of {command.machine!r}: add its package to the node's environment.systemPackages"))
    return findings


def check(test_script, programs=None):
    cmds = commands(test_script)
    return cmds, shellcheck(cmds) + pipeline_findings(cmds) + command_findings(cmds, programs)
