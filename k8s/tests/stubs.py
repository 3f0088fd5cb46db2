"""Stub commands for the scripts' tests: each records its arguments, one line per call, in
$STUB_LOG and answers from files under $STATE."""

import os
import subprocess


def stub_env(tmp_path, stubs, state):
    """Installs `stubs` (name -> script text) first on PATH; returns the environment to run with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STUB_LOG=str(tmp_path / "calls"), STATE=str(state))


def run_script(script, env, *args):
    return subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=60)


def recorded(tmp_path):
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []
