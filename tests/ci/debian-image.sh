#!/usr/bin/env bash
# Builds a minimal Debian root filesystem from Debian's mirror with debootstrap and imports it into
# Docker, for tests that need a Debian container where no image can be pulled. Prints the tag,
# devsecops-debian:SUITE-KEY; KEY hashes this script, the suite and the mirror, so each machine
# builds an image once and reuses it afterwards.
#
#   tests/ci/debian-image.sh bookworm        Debian 12 (what the Jenkins and GitHub stages run in)
#   tests/ci/debian-image.sh trixie          Debian 13 (another PostgreSQL major)
set -euo pipefail

suite="${1:-}"
case "$suite" in
  bookworm|trixie) ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$({ cat "$0"; echo "$suite $mirror"; } | sha256sum | cut -c1-12)
tag="devsecops-debian:$suite-$key"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is required (scripts/lib.sh install_tools)" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "building $tag with debootstrap from $mirror" >&2
debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >&2
# The suite's updates and security fixes, as a Debian image has them.
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "$tag"
