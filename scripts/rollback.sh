#!/usr/bin/env bash
# Returns an environment to the revision that was live before scripts/deploy.sh ran (recorded in
# reports/deploy/ENV.previous-revision while that deploy is unfinished: failed, or awaiting its
# promotion). It covers every failure after the record: the upgrade itself, the waits, helm test,
# an approval refused or timed out, a failed promotion. A blue-green update awaiting promotion is
# discarded: the Rollout goes back to the template its active Service still runs (argo-rollouts
# fast-tracks it, nothing to promote); after a promotion the earlier version is promoted back
# (argo-rollouts pauses a return to it like any update), never the version rolled back. As in
# deploy.sh, Helm is not asked to wait (its legacy checks hang on a claim only a CronJob mounts,
# its watcher cannot read a Rollout: scripts/deploy-lib.sh); the objects of that revision are
# waited on instead (wait_for_release, then each Rollout Healthy through
# k8s/scripts/rollout-status.py), within one budget of 10 minutes. Without a record (no deploy, or
# one that finished) it does nothing; after a first install there is no earlier revision and the
# release is left in place for inspection. Exit 0 rolled back (or nothing to do), 1 failed, 2
# usage or an unreadable record.
#
#   scripts/rollback.sh ENV [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deploy-lib.sh
source scripts/deploy-lib.sh

TIMEOUT=10m
env_name="${1:-}"
dry_run=0
if [ "${2:-}" = "--dry-run" ]; then dry_run=1; elif [ -n "${2:-}" ]; then echo "unknown option: $2" >&2; exit 2; fi
namespace=$(environment_namespace "$env_name") ||
  { echo "usage: scripts/rollback.sh development|staging|production [--dry-run]" >&2; exit 2; }

record=$(previous_record "$env_name")
if [ ! -f "$record" ]; then
  echo "nothing was deployed to $env_name by this run: no rollback" >&2
  exit 0
fi
previous=$(cat "$record")
if [ "$previous" = none ]; then
  echo "$RELEASE had no earlier revision in $namespace: left in place for inspection" >&2
  exit 0
fi
if ! [[ "$previous" =~ ^[1-9][0-9]*$ ]]; then
  echo "$record: '$previous' is neither a revision nor 'none'" >&2
  exit 2
fi
cmd=(helm rollback "$RELEASE" "$previous" --namespace "$namespace" --timeout "$TIMEOUT")
if [ "$dry_run" -eq 1 ]; then
  printf 'would run:'; printf ' %q' "${cmd[@]}"; printf '\n'
  printf 'would wait: the Deployments and volume claims of revision %s, then each Rollout of it Healthy' "$previous"
  printf ' (k8s/scripts/rollout-status.py ROLLOUT --namespace %s --timeout <left of %s>)\n' "$namespace" "$TIMEOUT"
  exit 0
fi
ensure_helm
deadline=$((SECONDS + $(duration_seconds "$TIMEOUT")))
manifest=$(helm get manifest "$RELEASE" --revision "$previous" --namespace "$namespace")
echo "rolling $RELEASE in $namespace back to revision $previous" >&2
"${cmd[@]}"
wait_for_release "$namespace" "$deadline" <<<"$manifest"
# The hashes the failed deploy left awaiting promotion: never promoted here.
promotion=$(promotion_record "$env_name")
failed=""
if [ -f "$promotion" ]; then failed=$(cat "$promotion"); fi
for name in $(rollouts_in <<<"$manifest"); do
  left=$(left_of "$deadline" "rollout/$name is Healthy")
  outcome=$(k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --timeout "$left" --accept-promotion-pause)
  case "$outcome" in
    "healthy "*) continue ;;
    "awaiting-promotion "*) hash=${outcome#awaiting-promotion } ;;
    *) echo "rollout/$name: unexpected outcome '$outcome'" >&2; exit 1 ;;
  esac
  # Back to a template the active Service no longer runs (the deploy had been promoted, its
  # scale-down delay is over): argo-rollouts treats it as an update and pauses it for promotion
  # (rollout/bluegreen.go isBlueGreenFastTracked). It is the version live before the deploy, the
  # one this rollback was asked for, so it is promoted here; the failed version never is.
  if grep -qx "$name $hash" <<<"$failed"; then
    echo "rollout/$name awaits the promotion of $hash, the version being rolled back: not promoted" >&2
    exit 1
  fi
  echo "rollout/$name: promoting $hash, the template of revision $previous, back to live" >&2
  promote_rollout "$namespace" "$name" "$hash"
  left=$(left_of "$deadline" "rollout/$name is Healthy")
  k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --timeout "$left" --stable "$hash" >/dev/null
done
rm -f "$record" "$promotion"
echo "rolled back: $RELEASE in $namespace runs revision $previous's manifests" >&2
