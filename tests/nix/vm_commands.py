"""The shell commands a NixOS VM test hands to its machines, checked as the test driver runs them.

The driver (nixos/lib/test-driver/src/test_driver/machine/__init__.py, `_execute`) runs each
command as `bash -c 'set -euo pipefail; <command>'`: a pipeline fails when any stage fails, not
only the last. `succeed` and `wait_until_succeeds` want exit status 0, `fail` and
`wait_until_fails` anything else; `execute` returns the status to the script.

Commands are extracted from the script's Python syntax tree once Nix has filled in its
interpolations (tests/nix/vm-tests.nix): string literals, f-strings whose values are the script's
own string constants, and concatenations of these. A value known only when the test runs (a pid, a
token) becomes the word RUNTIME_VALUE: its quoting cannot be checked here. Anything else passed as
a command is an error, never skipped.

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
"""

import ast
import json
import os
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


def _constants(tree):
    """Module-level names bound once to a string the script spells out."""
    bound, values = {}, {}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                bound[target.id] = bound.get(target.id, 0) + 1
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if bound[name] == 1:
                try:
                    values[name] = _string(node.value, values, lenient=False)
                except ExtractionError:
                    pass
    return values


def _string(node, constants, lenient=True):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            elif isinstance(value, ast.FormattedValue):
                inner = value.value
                if value.format_spec is None and value.conversion == -1 and isinstance(inner, ast.Name) and inner.id in constants:
                    parts.append(constants[inner.id])
                elif value.format_spec is None and isinstance(inner, ast.Constant):
                    parts.append(str(inner.value))
                elif lenient:
                    parts.append(RUNTIME_VALUE)
                else:
                    raise ExtractionError(ast.unparse(value))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _string(node.left, constants, lenient) + _string(node.right, constants, lenient)
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    raise ExtractionError(f"not a command string the check can read: {ast.unparse(node)}")


def commands(test_script):
    """Every (method, command) of the script, in order."""
    tree = ast.parse(test_script)
    constants = _constants(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in METHODS):
            continue
        args = [a for a in node.args]
        args += [k.value for k in node.keywords if k.arg == "command"]
        method = node.func.attr
        if method not in ("succeed", "fail"):  # these two take several commands; the rest one
            args = args[:1]
        if not args:
            raise ExtractionError(f"line {node.lineno}: {method}() without a command")
        for arg in args:
            if isinstance(arg, ast.Starred):
                raise ExtractionError(f"line {node.lineno}: {method}(*...): the commands cannot be read statically")
            try:
                text = _string(arg, constants)
            except ExtractionError as error:
                raise ExtractionError(f"line {node.lineno}: {error}") from None
            if method == "systemctl":
                method, text = "execute", f"systemctl {text}"
            found.append(Command(method, text, node.lineno))
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


def _stderr_to_stdout(stmt, ops):
    return any(r.get("Op") == ops["dup_out"] and (r.get("N") or {}).get("Value") == "2"
               and _literal(r.get("Word", {})) == "1" for r in stmt.get("Redirs", []))


def _reads_partially(stmt):
    cmd = stmt.get("Cmd") or {}
    if cmd.get("Type") != "CallExpr" or not cmd.get("Args"):
        return None
    words = [_literal(w) for w in cmd["Args"]]
    name = (words[0] or "").rsplit("/", 1)[-1]
    options = [w for w in words[1:] if w and w.startswith("-")]
    if name in ("grep", "egrep", "fgrep"):
        for option in options:
            if option in ("--quiet", "--silent", "--files-with-matches", "--files-without-match") or option.startswith("--max-count"):
                return f"{name} {option}"
            if not option.startswith("--") and any(flag in option[1:] for flag in "qlLm"):
                return f"{name} {option}"
    if name == "head":
        return "head"
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


def check(test_script):
    cmds = commands(test_script)
    return cmds, shellcheck(cmds) + pipeline_findings(cmds)
