#!/usr/bin/env bash
# Builds the devsecops-app image (or, with --loadtest, the load test's) offline and without BuildKit:
# a static, auditable binary built on the host, laid out as the Dockerfile's runtime stage lays it
# out, imported with the runtime stage's own USER, ENV, LABEL, EXPOSE, VOLUME, WORKDIR and ENTRYPOINT
# (read from the Dockerfile, the one source). With BuildKit and internet, `DOCKER_BUILDKIT=1 docker
# build .` (or `-f loadtest/Dockerfile .`) builds the same image in one step.
#   scripts/build-image.sh [TAG]                (default devsecops-app:dev)
#   scripts/build-image.sh --loadtest [TAG]     (default devsecops-loadtest:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
if [ "${1:-}" = --loadtest ]; then
  shift
  package=loadtest dockerfile=loadtest/Dockerfile user=loadtest writable=reports
  tag="${1:-devsecops-loadtest:dev}"
else
  package=devsecops-app dockerfile=Dockerfile user=app writable=data
  tag="${1:-devsecops-app:dev}"
fi
cargo_tool cargo-auditable cargo-auditable "$CARGO_AUDITABLE_VERSION"
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo auditable build --release --locked -q -p "$package" --target "$target"
# Each image its own layout directory, so building one never empties the other's.
dist="dist/$package"
rm -rf "$dist" && mkdir -p "$dist/$writable"
cp "target/$target/release/$package" "$dist/$package"
cp /etc/ssl/certs/ca-certificates.crt "$dist/ca-certificates.crt"
printf '%s:x:10001:10001:%s:/nonexistent:/sbin/nologin\n' "$user" "$package" > "$dist/passwd"
printf '%s:x:10001:\n' "$user" > "$dist/group"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 scripts/dockerfile_import.py "$dockerfile" "$dist" "$tag" "VERSION=$version" "REVISION=$revision"
echo "$tag"
