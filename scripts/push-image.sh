#!/usr/bin/env bash
# Pushes a locally built image under its registry name and prints the pushed reference by digest
# (REPOSITORY@sha256:...), which deploys, attestations and signatures then use instead of a tag.
# Logs in first when REGISTRY_USERNAME and REGISTRY_PASSWORD are set (password through stdin only).
#
#   scripts/push-image.sh [--dry-run] SOURCE TARGET
#   scripts/push-image.sh devsecops-app:1a2b3c4 localhost:32000/devsecops-app:1a2b3c4
set -euo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ $# -ne 2 ]; then sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
source="$1"
target="$2"
name="${target##*/}"
if [[ "$target" == *@* ]] || [[ "$name" != *:* ]]; then
  echo "TARGET must be REPOSITORY:TAG" >&2
  exit 2
fi
repository="${target%:*}"
# The registry is the first path part when it looks like a host (a dot, a port or localhost).
registry=docker.io
first="${target%%/*}"
if [[ "$target" == */* ]] && { [[ "$first" == *[.:]* ]] || [ "$first" = localhost ]; }; then registry="$first"; fi

if [ "$dry_run" -eq 1 ]; then
  if [ -n "${REGISTRY_USERNAME:-}" ]; then echo "would run: docker login $registry --username $REGISTRY_USERNAME --password-stdin"; fi
  echo "would run: docker tag $source $target"
  echo "would run: docker push $target"
  exit 0
fi

if [ -n "${REGISTRY_USERNAME:-}" ] && [ -n "${REGISTRY_PASSWORD:-}" ]; then
  printf '%s' "$REGISTRY_PASSWORD" | docker login "$registry" --username "$REGISTRY_USERNAME" --password-stdin >&2
fi
docker tag "$source" "$target"
docker push "$target" >&2
# The registry's digest of what was just pushed, for this repository.
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$target" |
  grep -F "$repository@sha256:" | head -n 1)
[ -n "$digest" ] || { echo "no digest for $target after push" >&2; exit 1; }
echo "$digest"
