"""`devsecops audit --nix` on a real Nix closure of binaries built here with cargo auditable: the
vulnerable crate gives its advisory with the store path, NAR hash and fixed version; the patched one
nothing; a Rust binary without the section is "not auditable"; a C program is left alone; a corrupt
section, a NAR hash that does not match and a store path that is not here are errors naming them."""

import json
import os
import subprocess

from conftest import ADVISORY_DB, BIN, FIXTURES, run


def audit(tmp_path, *args, check=True):
    out = run(["audit", "--db", ADVISORY_DB, "--output", "-", *args], cwd=tmp_path, check=check)
    return out, (json.loads(out.stdout) if out.returncode == 0 else None)


def tool_path(closure, name):
    _, by_name = closure
    return by_name[name]["path"]


def test_a_closure_gives_the_advisory_with_store_path_nar_hash_and_fixed_version(tmp_path, closure):
    root, by_name = closure
    _, report = audit(tmp_path, "--nix", root)
    assert report["store_paths"] == len(by_name) == 5
    vuln = by_name["vuln-tool-0.1.0"]
    [match] = report["findings"]
    assert match["advisory"]["id"] == "RUSTSEC-2021-0003"
    assert "CVE-2021-25900" in match["advisory"]["aliases"]
    assert (match["package"], match["version"]) == ("smallvec", "1.6.0")
    assert ">=1.6.1" in match["patched"]
    [binary] = match["binaries"]
    assert binary == {"path": vuln["path"] + "/bin/vuln-tool", "store_path": vuln["path"], "nar_hash": vuln["narHash"]}
    # The patched binary is read (its two crates) and matches nothing.
    audited = {b["path"].rsplit("/", 1)[1]: b for b in report["binaries"]}
    assert set(audited) == {"vuln-tool", "patched-tool"} and audited["patched-tool"]["crates"] == 2
    # Rust without the section is listed; the C program is an executable and nothing more.
    assert [a["path"] for a in report["not_auditable"]] == [tool_path(closure, "plain-tool-0.1.0") + "/bin/plain-tool"]
    assert report["executables"] == 4 and report["errors"] == []


def test_the_json_of_nix_path_info_and_a_link_audit_the_same(tmp_path, closure):
    root, _ = closure
    _, from_store = audit(tmp_path, "--nix", root)
    info = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive", root],
                          capture_output=True, text=True, check=True).stdout
    (tmp_path / "closure.json").write_text(info)
    (tmp_path / "result").symlink_to(root)
    for source in ("closure.json", "result"):
        _, report = audit(tmp_path, "--nix", str(tmp_path / source))
        assert report["findings"] == from_store["findings"], source
        assert report["not_auditable"] == from_store["not_auditable"], source


def test_a_binary_cache_is_read_from_its_narinfo_and_nar_files(tmp_path, closure):
    root, _ = closure
    cache = tmp_path / "cache"
    subprocess.run(["nix", "--extra-experimental-features", "nix-command", "copy", "--to",
                    f"file://{cache}?compression=none", root], check=True, capture_output=True)
    _, from_store = audit(tmp_path, "--nix", root)
    _, from_cache = audit(tmp_path, "--nix", str(cache))
    assert from_cache["findings"] == from_store["findings"]
    assert from_cache["not_auditable"] == from_store["not_auditable"]
    # A .narinfo pointing outside the cache is refused, not followed.
    narinfo = next(cache.glob("*.narinfo"))
    text = narinfo.read_text()
    url = next(line for line in text.splitlines() if line.startswith("URL: "))
    narinfo.write_text(text.replace(url, "URL: ../../outside.nar"))
    out, _ = audit(tmp_path, "--nix", str(cache), check=False)
    assert out.returncode == 2 and "not a file of the cache" in out.stderr and narinfo.name in out.stderr, out.stderr
    # The default compression is refused with the way out, not read as an empty closure.
    xz = tmp_path / "xz"
    subprocess.run(["nix", "--extra-experimental-features", "nix-command", "copy", "--to", f"file://{xz}", root],
                   check=True, capture_output=True)
    out, _ = audit(tmp_path, "--nix", str(xz), check=False)
    assert out.returncode == 2 and "compression=none" in out.stderr, out.stderr


def test_findings_reach_the_gate_merged_with_the_workspace_audit(tmp_path, closure):
    root, _ = closure
    run(["ingest", "--tool", "cargo-audit", os.path.join(FIXTURES, "real", "cargo-audit.json")], cwd=tmp_path)
    added = run(["audit", "--db", ADVISORY_DB, "--nix", root], cwd=tmp_path)
    assert "RUSTSEC-2021-0003 smallvec 1.6.0" in added.stderr
    gate = run(["gate", "--format", "json,markdown,sarif"], cwd=tmp_path, check=False)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    findings = json.loads((tmp_path / "reports" / "devsecops.json").read_text())["findings"]
    [smallvec] = [f for f in findings if f["rule"] == "RUSTSEC-2021-0003"]
    assert smallvec["tools"] == ["cargo-audit", "devsecops-audit"], "one advisory, one crate: one finding"
    assert smallvec["artifacts"][0]["store_path"] == tool_path(closure, "vuln-tool-0.1.0")
    [plain] = [f for f in findings if f["rule"] == "not-auditable"]
    assert plain["severity"] == "medium" and plain["artifacts"][0]["path"].endswith("/bin/plain-tool")
    summary = (tmp_path / "reports" / "devsecops-summary.md").read_text()
    assert "in " + tool_path(closure, "vuln-tool-0.1.0") + "/bin/vuln-tool" in summary.replace("\\", "")
    # SARIF consumers see the binary too.
    sarif = json.loads((tmp_path / "reports" / "devsecops.sarif").read_text())
    texts = [r["message"]["text"] for r in sarif["runs"][0]["results"] if r["ruleId"] == "not-auditable"]
    assert texts and texts[0].endswith("/bin/plain-tool [devsecops-audit]"), texts


def test_a_corrupt_section_is_an_error_naming_the_file(tmp_path, corrupt_bins, corrupt_closure):
    for name, binary in corrupt_bins.items():
        out, _ = audit(tmp_path, binary, check=False)
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        assert binary in out.stderr and ".dep-v0" in out.stderr, (name, out.stderr)
    out, _ = audit(tmp_path, "--nix", corrupt_closure, check=False)
    assert out.returncode == 2 and "/bin/corrupt-tool" in out.stderr and "/nix/store/" in out.stderr, out.stderr
    # Added to the findings instead, the failure is recorded so the gate fails even so.
    run(["audit", "--db", ADVISORY_DB, "--nix", corrupt_closure], cwd=tmp_path, check=False)
    gate = run(["gate", "--format", "json"], cwd=tmp_path, check=False)
    assert gate.returncode == 1 and "could not be audited" in gate.stdout, gate.stdout


def test_files_that_do_not_match_the_closure_or_are_missing_are_errors(tmp_path, closure):
    root, by_name = closure
    vuln = by_name["vuln-tool-0.1.0"]
    lying = [dict(i, narHash="sha256-" + "A" * 43 + "=") if i is vuln else i for i in by_name.values()]
    (tmp_path / "lying.json").write_text(json.dumps(lying))
    out, _ = audit(tmp_path, "--nix", str(tmp_path / "lying.json"), check=False)
    assert out.returncode == 2 and vuln["path"] in out.stderr and "narHash" in out.stderr, out.stderr
    gone = [{"path": "/nix/store/00000000000000000000000000000000-gone-1.0", "narHash": vuln["narHash"], "references": []}]
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    out, _ = audit(tmp_path, "--nix", str(tmp_path / "gone.json"), check=False)
    assert out.returncode == 2 and "gone-1.0" in out.stderr and "not on this machine" in out.stderr, out.stderr


def test_a_missing_or_wrong_advisory_database_is_an_error(tmp_path, closure):
    root, _ = closure
    out = run(["audit", "--db", str(tmp_path), "--nix", root], cwd=tmp_path, check=False)
    assert out.returncode == 2 and "not a RustSec advisory database" in out.stderr, out.stderr


def test_the_audit_runs_as_a_scanner_of_devsecops_scan(tmp_path, closure):
    root, _ = closure
    (tmp_path / "devsecops.toml").write_text(
        '[policy]\nfail_on = ["critical", "high"]\nmode = "all"\n\n'
        '[[scanner]]\nname = "closure"\nformat = "devsecops-audit"\n'
        f'command = {json.dumps([BIN, "audit", "--nix", root, "--db", ADVISORY_DB, "--output", "-"])}\n')
    out = run(["scan", "--format", "json"], cwd=tmp_path, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    findings = json.loads((tmp_path / "reports" / "devsecops.json").read_text())["findings"]
    assert {f["rule"] for f in findings} == {"RUSTSEC-2021-0003", "not-auditable"}
