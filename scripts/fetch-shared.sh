#!/usr/bin/env bash
# Lays out the shared data the test command reads from ../shared on a machine that has none (GitHub
# Actions): the JSON/XSD schemas at the upstream commits below, each checked against its SHA-256, and
# the RustSec advisory database at the commit flake.lock pins (the test command recomputes its NAR
# hash against the lock). Nothing is fetched while the tests run.
#
#   scripts/fetch-shared.sh DIR            download into DIR/schemas and DIR/advisory-db
#   scripts/fetch-shared.sh --verify DIR   check DIR/schemas against the hashes only (offline)
#
# Then point the test command at it: ../shared next to the checkout, or
# DEVSECOPS_SCHEMAS=DIR/schemas and DEVSECOPS_ADVISORY_DB=DIR/advisory-db.
set -euo pipefail

# sha256  path under schemas/  owner/repo  commit  path in that repository
MANIFEST="
eb1052e728aeb5e46eb1c1202958585eb48edc5ba25b406b7b41c1049009477d crds/argoproj.io/analysis-run-crd.yaml argoproj/argo-rollouts b6bd3bcf8f60d717a98763d26acc983db7f97cb0 manifests/crds/analysis-run-crd.yaml
96a871705477bb8876f91630789ce753c8291f0ff5457a8cbc781ff150522369 crds/argoproj.io/analysis-template-crd.yaml argoproj/argo-rollouts b6bd3bcf8f60d717a98763d26acc983db7f97cb0 manifests/crds/analysis-template-crd.yaml
265283fa1dbf10a6b37c3b1e0ece97fa7fe561ca66da8521ca4b194297b31882 crds/argoproj.io/cluster-analysis-template-crd.yaml argoproj/argo-rollouts b6bd3bcf8f60d717a98763d26acc983db7f97cb0 manifests/crds/cluster-analysis-template-crd.yaml
d79c0dab9bb386b1c9329fb69cf0d843fff2152b3f7916839755c1aabc7387f5 crds/argoproj.io/rollout-crd.yaml argoproj/argo-rollouts b6bd3bcf8f60d717a98763d26acc983db7f97cb0 manifests/crds/rollout-crd.yaml
5dde0e229249b6b707beb98674c1deae3949d5c319a6c45b9f5a80c99618e40c crds/argoproj.io/application-crd.yaml argoproj/argo-cd 109ca7ca71139e514114499d294a492e7910a965 manifests/crds/application-crd.yaml
5044be5a610ca90a075f34f03ed20b462695c43387ba9410db7f4250e47b1e2f crds/external-secrets.io/external-secrets.io_externalsecrets.yaml external-secrets/external-secrets 378bdb622ed9712ef4a58370f6a17af033b7d343 config/crds/bases/external-secrets.io_externalsecrets.yaml
45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d crds/monitoring.coreos.com/monitoring.coreos.com_podmonitors.yaml prometheus-operator/prometheus-operator f8fafd475f3d132e239432ae6172de60a6cb6516 example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml
78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d crds/monitoring.coreos.com/monitoring.coreos.com_prometheusrules.yaml prometheus-operator/prometheus-operator f8fafd475f3d132e239432ae6172de60a6cb6516 example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32 crds/monitoring.coreos.com/monitoring.coreos.com_servicemonitors.yaml prometheus-operator/prometheus-operator f8fafd475f3d132e239432ae6172de60a6cb6516 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
ae47f4a00f6e998faef57e480f9a3960cd48ea16a79270861fc7442601507472 crds/postgresql.cnpg.io/postgresql.cnpg.io_clusters.yaml cloudnative-pg/cloudnative-pg 4b5e244a7d031f67e025c83c1555e7726ecbbfa1 config/crd/bases/postgresql.cnpg.io_clusters.yaml
2d956c1d05c092695457a91f3b5c57c749793c013ec224a0935807cfc8ae4480 cyclonedx/bom-1.5.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/bom-1.5.schema.json
18f57f7482593bad9f21b4feed09084640cbeff419d62ad5090c5ceccca5b37d cyclonedx/bom-1.6.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/bom-1.6.schema.json
73308edec3ab2d38bfffd993e96a042b594314143b6971a6e9ed98bbb6bd76ce cyclonedx/bom-1.7.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/bom-1.7.schema.json
027b059a729a06d591bac79a584ef04f83fc32d91a826fdba6ad3c98a10e5b44 cyclonedx/cryptography-defs.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/cryptography-defs.schema.json
8bae002c25e723db7ee1f26afde680ae1a2b1a8f6b4b4b0fd65dc3becb090aae cyclonedx/jsf-0.82.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/jsf-0.82.schema.json
ea6e844ee6fba1e93473d94834d0ee0996970533497935f932f73d488ffdf4a3 cyclonedx/spdx.schema.json CycloneDX/specification b29bae660048e0ad2fbc5f2972927b442ce951c4 schema/spdx.schema.json
83bd3bf0c4122ceb764927bc189d9e3794931306b53cdf89816f6f3472cadf88 github/github-action.json SchemaStore/schemastore 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e src/schemas/json/github-action.json
7a952fdb7c1b130732e40ccea9db9bced906c1198e97834f8a49ae3b411f3161 github/github-workflow.json SchemaStore/schemastore 3b6446ad8a077bac56f4a4796c0b7fd88927fc8e src/schemas/json/github-workflow.json
67451cd5b288f97e3f68eccd52ffa4f75151fc87c669b8cd93c051056b294265 grafana/dashboard.jsonschema.json grafana/grafana-foundation-sdk b3d52a7cbaffff15aeada9a7dbc55be1a417bdab jsonschema/dashboard.jsonschema.json
147ff89ef34a82f9a1b2951e7cad251b98c9a7a48a0e0c8e44937141791f57a8 junit/JUnit.xsd windyroad/JUnit-Schema cfa434d4b8e102a8f55b8727b552a0063ee9044e JUnit.xsd
9373597734ed1d3ea5161a8b46d3866c4a8cfe76fd632fdd16aef01fb34b3238 openvex/openvex_json_schema.json openvex/spec d29fab0c81cfea04159436d54c3edc32947039ac openvex_json_schema.json
c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e sarif/sarif-schema-2.1.0.json oasis-tcs/sarif-spec e0583813964ec43cea53b6b531b402866095ed1f sarif-2.1/schema/sarif-schema-2.1.0.json
"
ADVISORY_DB_URL="${ADVISORY_DB_URL:-https://github.com/rustsec/advisory-db.git}"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

verify_only=0
if [ "${1:-}" = "--verify" ]; then verify_only=1; shift; fi
if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then usage >&2; exit 2; fi
dir="$1"

# check FILE SHA256: the file exists and has exactly that content.
check() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -c1-64)" = "$2" ]
}

status=0
while read -r sha path repo commit source; do
  [ -n "$sha" ] || continue
  target="$dir/schemas/$path"
  if [ "$verify_only" -eq 0 ] && ! check "$target" "$sha"; then
    mkdir -p "$(dirname "$target")"
    curl -fsSL --retry 3 -o "$target.part" "https://raw.githubusercontent.com/$repo/$commit/$source"
    mv "$target.part" "$target"
  fi
  if ! check "$target" "$sha"; then
    echo "schemas/$path: missing or not the pinned content ($repo@$commit:$source)" >&2
    status=1
  fi
done <<<"$MANIFEST"

if [ "$verify_only" -eq 0 ]; then
  # The pinned advisories, as Nix uses them: a run is reproducible, and new advisories arrive with a
  # reviewed `nix flake update advisory-db`. A checkout left by an earlier run (a Jenkins agent keeps
  # it beside its workspaces) moves to the new pin when flake.lock changes.
  rev=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["nodes"]["advisory-db"]["locked"]["rev"])' \
    "$(dirname "$0")/../flake.lock")
  current=""
  if [ -d "$dir/advisory-db/.git" ]; then current=$(git -C "$dir/advisory-db" rev-parse HEAD 2>/dev/null || true); fi
  if [ ! -d "$dir/advisory-db/crates" ] || { [ -n "$current" ] && [ "$current" != "$rev" ]; }; then
    [ -d "$dir/advisory-db/.git" ] || git init -q "$dir/advisory-db"
    git -C "$dir/advisory-db" fetch -q --depth 1 "$ADVISORY_DB_URL" "$rev"
    git -C "$dir/advisory-db" checkout -q --force FETCH_HEAD
  fi
fi
exit "$status"
