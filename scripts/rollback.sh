#!/usr/bin/env bash
# Returns an environment to the revision that was live before scripts/deploy.sh ran (recorded in
# reports/deploy/ENV.previous-revision while that deploy is unfinished). A failed
# `helm upgrade --atomic` has already rolled itself back; this covers what fails after the upgrade
# (helm test). Without a record (no deploy, or one that finished) it does nothing; after a first install there is no earlier revision and
# the release is left in place for inspection.
#
#   scripts/rollback.sh ENV [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASE=devsecops-app
env_name="${1:-}"
dry_run=0
if [ "${2:-}" = "--dry-run" ]; then dry_run=1; elif [ -n "${2:-}" ]; then echo "unknown option: $2" >&2; exit 2; fi
case "$env_name" in
  development|staging|production) ;;
  *) echo "usage: scripts/rollback.sh development|staging|production [--dry-run]" >&2; exit 2 ;;
esac

namespace="devsecops-$env_name"
record="${DEPLOY_STATE_DIR:-reports/deploy}/$env_name.previous-revision"
if [ ! -f "$record" ]; then
  echo "nothing was deployed to $env_name by this run: no rollback" >&2
  exit 0
fi
previous=$(cat "$record")
if ! [[ "$previous" =~ ^[0-9]+$ ]]; then
  echo "$RELEASE had no earlier revision in $namespace: left in place for inspection" >&2
  exit 0
fi
cmd=(helm rollback "$RELEASE" "$previous" --namespace "$namespace" --wait --timeout 10m)
if [ "$dry_run" -eq 1 ]; then
  printf 'would run:'; printf ' %q' "${cmd[@]}"; printf '\n'
  exit 0
fi
if ! command -v helm >/dev/null 2>&1; then
  # shellcheck source=scripts/lib.sh
  source scripts/lib.sh
  ensure_kube_tools "$TOOLS_CACHE"
fi
echo "rolling $RELEASE in $namespace back to revision $previous" >&2
"${cmd[@]}"
rm -f "$record"
