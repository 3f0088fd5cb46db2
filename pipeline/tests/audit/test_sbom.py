"""`devsecops sbom --nix` with the crates embedded in each binary of a real closure, and
`sbom --nix-drv` with the fixed-output sources of a real derivation graph: both valid CycloneDX 1.5
(the official schema in ../shared/schemas), with the identifiers a scanner matches on."""

import json
import os
import subprocess

from conftest import FIXTURES, run
from test_reports import cyclonedx_validator


def assert_valid(bom):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in cyclonedx_validator("1.5").iter_errors(bom)]
    assert not errors, errors[:5]


def walk(components):
    for c in components:
        yield c
        yield from walk(c.get("components", []))


def test_a_closure_sbom_lists_the_crates_inside_each_binary(tmp_path, closure):
    root, by_name = closure
    bom = json.loads(run(["sbom", "--nix", root], cwd=tmp_path).stdout)
    assert_valid(bom)
    assert bom["metadata"]["component"]["name"] == "appliance"
    store = {c["name"]: c for c in bom["components"]}
    vuln_path = by_name["vuln-tool-0.1.0"]["path"]
    vuln = store["vuln-tool"]
    assert vuln["purl"] == "pkg:nix/vuln-tool@0.1.0?outputhash=" + vuln_path.split("/")[-1].split("-")[0]
    [binary] = vuln["components"]
    assert binary["bom-ref"] == vuln_path + "/bin/vuln-tool"
    crates = {c["purl"]: c for c in binary["components"]}
    assert set(crates) == {"pkg:cargo/smallvec@1.6.0", "pkg:cargo/vuln-tool@0.1.0"}
    # One crate in two binaries stays two components: every bom-ref is unique.
    refs = [c["bom-ref"] for c in walk(bom["components"])]
    assert len(refs) == len(set(refs))
    # The binary depends on its own crate, which depends on smallvec.
    deps = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    own = binary["bom-ref"] + "#pkg:cargo/vuln-tool@0.1.0"
    assert deps[binary["bom-ref"]] == [own] and deps[own] == [binary["bom-ref"] + "#pkg:cargo/smallvec@1.6.0"]
    # A Rust binary without the list is there, saying so; the C program is no component.
    [plain] = store["plain-tool"]["components"]
    assert plain["properties"][0]["value"].startswith("none")
    assert "components" not in store["c-tool"]


def test_a_derivation_sbom_lists_what_its_build_fetches(tmp_path):
    drv = subprocess.run(["nix-instantiate", os.path.join(FIXTURES, "fetch-sources.nix")],
                         capture_output=True, text=True, check=True).stdout.strip()
    bom = json.loads(run(["sbom", "--nix-drv", drv], cwd=tmp_path).stdout)
    assert_valid(bom)
    assert bom["metadata"]["component"]["name"] == "app"
    sources = {c["name"]: c for c in bom["components"]}
    assert set(sources) == {"hello", "tool-src", "data"}, "the library built from source is no source"
    hello = sources["hello"]
    assert hello["version"] == "2.12.1"
    assert hello["hashes"] == [{"alg": "SHA-256", "content": "8d99142afd92576f30b0cd7cb42a8dc6809998bc5d607d88761f512e26c7db20"}]
    assert hello["externalReferences"] == [{"type": "distribution", "url": "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz"}]
    assert hello["purl"].startswith("pkg:generic/hello@2.12.1?checksum=sha256:8d99142a")
    # A NAR hash is not the hash of a file: no `hashes`, the mode says what it is of.
    git = sources["tool-src"]
    props = {p["name"]: p["value"] for p in git["properties"]}
    assert "hashes" not in git and props["nix:output_hash_mode"] == "nar"
    assert props["nix:rev"] == "0123456789abcdef0123456789abcdef01234567"
    assert git["externalReferences"][0]["type"] == "vcs"
    # Structured attributes: both mirrors.
    assert [r["url"] for r in sources["data"]["externalReferences"]] == [
        "https://mirror-a.example/data-1.0.bin", "https://mirror-b.example/data-1.0.bin"]
    assert sources["data"]["hashes"][0]["alg"] == "SHA-512"


def test_a_file_that_is_no_derivation_is_an_error_naming_it(tmp_path):
    bogus = tmp_path / "bogus.drv"
    bogus.write_text("Derive([(")
    out = run(["sbom", "--nix-drv", str(bogus)], cwd=tmp_path, check=False)
    assert out.returncode == 2 and str(bogus) in out.stderr and "not a derivation" in out.stderr, out.stderr
