#!/usr/bin/env bash
# Prints a Debian image for tests that need a Debian container: the one built here before, else the
# official debian:VERSION when a registry can be reached (GitHub's runners, where the test command
# itself runs in a container and debootstrap could not mount /proc), else one built now from
# Debian's mirror with debootstrap and imported into Docker as devsecops-debian:SUITE-KEY; KEY hashes
# the build recipe below, so each machine builds it once and reuses it afterwards.
#
#   tests/ci/debian-image.sh bookworm        Debian 12 (what the Jenkins and GitHub stages run in)
#   tests/ci/debian-image.sh trixie          Debian 13 (another PostgreSQL major)
set -euo pipefail

suite="${1:-}"
case "$suite" in
  bookworm) version=12 ;;
  trixie) version=13 ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the image is made of (debootstrap's arguments and the apt sources); a change makes a new image.
bootstrap=(--variant=minbase --include=ca-certificates "$suite")
sources="deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main"
key=$(printf '%s\n' "${bootstrap[*]} $mirror" "$sources" | sha256sum | cut -c1-12)
tag="devsecops-debian:$suite-$key"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
if docker pull -q "debian:$version" >/dev/null 2>&1; then
  echo "debian:$version"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is required (scripts/lib.sh install_tools)" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "building $tag with debootstrap from $mirror" >&2
debootstrap "${bootstrap[@]}" "$root" "$mirror" >&2
# The suite's updates and security fixes, as a Debian image has them.
printf '%s\n' "$sources" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import - "$tag" >/dev/null
# Images of an earlier recipe (and what was derived from them) are not used again.
docker images --format '{{.Repository}}:{{.Tag}}' devsecops-debian | grep "^devsecops-debian:$suite-" |
  grep -v "^$tag" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$tag"
