#!/usr/bin/env bash
# Makes live the blue-green update that scripts/deploy.sh left awaiting promotion (production: the
# new version ready on the preview Service, its pre-promotion analysis and helm test passed), after
# the approval. It promotes only the pod-template hash the deploy recorded
# (reports/deploy/ENV.awaiting-promotion), as `kubectl argo rollouts promote` does, with a patch the
# API server refuses if the Rollout moved on to another hash meanwhile (scripts/deploy-lib.sh
# promotion_patch). It then waits until the Rollout is Healthy with that hash stable (the active
# Service switched), runs helm test, and clears the deploy's records. With no record nothing awaits
# promotion (a first install, an unchanged pod template, an environment without blue-green) and it
# says so. A failure keeps the records: scripts/rollback.sh then returns to the version live before.
#
#   scripts/promote.sh ENV [--timeout 10m] [--dry-run]
#
# --timeout is the budget of the whole promotion. Exit 0 live (or nothing to promote); 1 failed or
# refused, records kept for scripts/rollback.sh; 2 usage, or the record or Rollout cannot be read.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deploy-lib.sh
source scripts/deploy-lib.sh

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

env_name=""
timeout=10m
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout="${2:?--timeout needs a value}"; shift ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$env_name" ] || { echo "one environment only" >&2; exit 2; }; env_name="$1" ;;
  esac
  shift
done
namespace=$(environment_namespace "$env_name") || { usage >&2; exit 2; }
budget=$(duration_seconds "$timeout") || exit 2
deadline=$((SECONDS + budget))

promotion=$(promotion_record "$env_name")
if [ ! -f "$promotion" ]; then
  echo "nothing awaits promotion in $env_name (no $promotion): the last deploy is live or there was none" >&2
  exit 0
fi
mapfile -t pending < "$promotion"
for entry in "${pending[@]}"; do
  [[ "$entry" =~ ^[a-z0-9][-a-z0-9.]*\ [a-z0-9]+$ ]] ||
    { echo "$promotion: '$entry' is not 'ROLLOUT HASH'" >&2; exit 2; }
done
[ "${#pending[@]}" -gt 0 ] || { echo "$promotion is empty" >&2; exit 2; }

if [ "$dry_run" -eq 1 ]; then
  for entry in "${pending[@]}"; do
    read -r name hash <<<"$entry"
    printf "would run: kubectl patch rollout %s --namespace %s --subresource status --type json -p '%s'\n" \
      "$name" "$namespace" "$(promotion_patch "$hash")"
    printf 'would run: k8s/scripts/rollout-status.py %s --namespace %s --timeout <left of %s> --stable %s\n' \
      "$name" "$namespace" "$timeout" "$hash"
  done
  printf 'would run: helm test %s --namespace %s --filter !name=%s --timeout <left of %s>\n' \
    "$RELEASE" "$namespace" "$LOAD_TEST_HOOK" "$timeout"
  exit 0
fi

ensure_helm
# Every failure from here on keeps the records for scripts/rollback.sh.
fail_promotion() {
  echo "promotion failed: $1; scripts/rollback.sh $env_name returns to the version live before the deploy" >&2
  exit 1
}
for entry in "${pending[@]}"; do
  read -r name hash <<<"$entry"
  # Still paused for exactly this version? Already promoted by hand counts; anything else refuses.
  state=$(k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --once --accept-promotion-pause) ||
    fail_promotion "rollout/$name does not await the promotion of $hash (not promoted)"
  case "$state" in
    "awaiting-promotion $hash")
      echo "promoting rollout/$name to $hash in $namespace" >&2
      promote_rollout "$namespace" "$name" "$hash" || fail_promotion "the API server refused the promotion of $hash" ;;
    "healthy $hash") echo "rollout/$name already runs $hash as its stable version" >&2 ;;
    *) fail_promotion "rollout/$name is at '$state', not awaiting the promotion of $hash (not promoted)" ;;
  esac
  left=$(left_of "$deadline" "rollout/$name is Healthy") || fail_promotion "out of time"
  k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --timeout "$left" --stable "$hash" >/dev/null ||
    fail_promotion "rollout/$name is not Healthy on $hash"
done
left=$(left_of "$deadline" "helm test") || fail_promotion "out of time"
helm test "$RELEASE" --namespace "$namespace" --filter "!name=$LOAD_TEST_HOOK" --timeout "$left" ||
  fail_promotion "helm test failed"
rm -f "$promotion" "$(previous_record "$env_name")"
echo "promoted: $RELEASE in $namespace is live" >&2
