#!/usr/bin/env bash
# Builds the devsecops-app image offline and without BuildKit: a static, auditable binary built on the
# host, laid out as the Dockerfile's runtime stage lays it out, imported with the runtime stage's own
# USER, ENV, LABEL, EXPOSE, VOLUME and ENTRYPOINT (read from the Dockerfile, the one source).
# With BuildKit and internet, `DOCKER_BUILDKIT=1 docker build .` builds the same image in one step.
#   scripts/build-image.sh [TAG]      (default devsecops-app:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
tag="${1:-devsecops-app:dev}"
cargo_tool cargo-auditable cargo-auditable "$CARGO_AUDITABLE_VERSION"
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo auditable build --release --locked -q -p devsecops-app --target "$target"
rm -rf dist && mkdir -p dist/data
cp "target/$target/release/devsecops-app" dist/devsecops-app
cp /etc/ssl/certs/ca-certificates.crt dist/ca-certificates.crt
printf 'app:x:10001:10001:devsecops-app:/nonexistent:/sbin/nologin\n' > dist/passwd
printf 'app:x:10001:\n' > dist/group
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 scripts/dockerfile_import.py Dockerfile dist "$tag" "VERSION=$version" "REVISION=$revision"
echo "$tag"
