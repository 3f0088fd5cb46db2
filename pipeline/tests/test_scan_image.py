"""scripts/scan-image.sh gates the image with the accepted findings of the base, never the change's:
run in a copy of the script in a real git repository, with docker, cargo, trivy and devsecops
replaced by stubs that record what the gate is given."""
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STUBS = {
    # `docker image inspect` prints the entrypoint the scan audits (ENTRYPOINT unset: nothing).
    "docker": '#!/bin/sh\ncase "$1" in create) echo c0ffee ;; cp) : > "$3" ;;\n'
              '  image) echo "${ENTRYPOINT-/usr/local/bin/devsecops-app}" ;; esac\n',
    "cargo": "#!/bin/sh\necho '{}'\n",
    "cargo-audit": "#!/bin/sh\nexit 0\n",
    "trivy": '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --output ] && echo "{}" > "$2"; shift; done\n',
    # The gate: what the suppressions file its configuration names holds.
    "devsecops": '#!/bin/bash\nconfig="$2"\ncase " $* " in *" gate "*)\n'
                 '  file=$(sed -n \'s/^suppressions = "\\(.*\\)"$/\\1/p\' "$config")\n'
                 '  cat "$(dirname "$config")/$file" > "$RECORD" ;; esac\n',
}


def make_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for script in ("scan-image.sh", "lib.sh"):
        shutil.copy(ROOT / "scripts" / script, repo / "scripts" / script)
    git = lambda *args: subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout
    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (repo / ".devsecops").mkdir()
    (repo / ".devsecops" / "image-suppressions.toml").write_text("# the base's\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    git("checkout", "-q", "-b", "change")
    (repo / ".devsecops" / "image-suppressions.toml").write_text("# the change's: accepts everything\n")
    git("commit", "-q", "-am", "change")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    db = tmp_path / "advisory-db"
    (db / "crates").mkdir(parents=True)
    (db / "crates" / "README").write_text("x")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", DEVSECOPS_BIN=str(bin_dir / "devsecops"),
               DEVSECOPS_ADVISORY_DB=str(db), RECORD=str(tmp_path / "record"))
    return repo, git, env


def scan(repo, env, *args):
    return subprocess.run(["bash", "scripts/scan-image.sh", *args, "app:1"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)


def test_with_a_base_the_image_gate_uses_the_bases_suppressions(tmp_path):
    repo, git, env = make_repo(tmp_path)
    out = scan(repo, env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "record").read_text() == "# the change's: accepts everything\n", "without --base: the change's"
    out = scan(repo, env, "--base", "refs/remotes/origin/main")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "record").read_text() == "# the base's\n"
    assert "this change edits .devsecops/image-suppressions.toml" in out.stderr
    base = git("rev-parse", "refs/remotes/origin/main").strip()
    out = scan(repo, env, "--base", base)
    assert out.returncode == 0 and (tmp_path / "record").read_text() == "# the base's\n", out.stderr


def test_a_base_without_the_file_accepts_nothing(tmp_path):
    repo, git, env = make_repo(tmp_path)
    git("rm", "-q", ".devsecops/image-suppressions.toml")
    git("commit", "-q", "-m", "no suppressions")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / ".devsecops").mkdir(exist_ok=True)
    (repo / ".devsecops" / "image-suppressions.toml").write_text("# added by the change\n")
    out = scan(repo, env, "--base", "refs/remotes/origin/main")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "record").read_text() == ""


@pytest.mark.parametrize("base", ["origin/main", "main", "refs/remotes/origin/nope", "abc123"])
def test_a_short_ambiguous_or_missing_base_is_refused(tmp_path, base):
    repo, git, env = make_repo(tmp_path)
    git("tag", "origin/main", "HEAD")  # a tag that would shadow the short name
    out = scan(repo, env, "--base", base)
    assert out.returncode == 2, out.stderr
    assert not (tmp_path / "record").exists(), "nothing is gated with an unresolved base"


def test_an_image_without_an_entrypoint_is_refused_not_passed(tmp_path):
    """The binary to audit is the image's entrypoint: without one nothing would be audited."""
    repo, _, env = make_repo(tmp_path)
    out = scan(repo, dict(env, ENTRYPOINT=""))
    assert out.returncode == 1 and "has no ENTRYPOINT: no binary to audit" in out.stderr, out.stderr
    assert not (tmp_path / "record").exists(), "the gate ran on nothing"
