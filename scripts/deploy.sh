#!/usr/bin/env bash
# Deploys devsecops-app to one environment with Helm: the chart in k8s/chart with that environment's
# values (k8s/overlays/ENV/values.yaml) into namespace devsecops-ENV. Helm applies the release
# without waiting; this script then waits on what it runs (scripts/deploy-lib.sh wait_for_release:
# Deployments rolled out, volume claims bound or bound on first use, never a claim only a CronJob
# mounts), on each Argo Rollout through its own status (k8s/scripts/rollout-status.py), and runs
# `helm test` against the new version (on blue-green, through the preview Service).
# A blue-green update (production) stops where argo-rollouts pauses it for promotion: the new
# version ready on the preview Service, its pre-promotion analysis passed. The deploy then ends with
# "awaiting promotion" and scripts/promote.sh (after the approval) makes it live. A first install
# and an unchanged pod template have nothing to promote and are live at once.
# While the deploy is unfinished (failed, or awaiting promotion) the revision live before it is
# recorded (reports/deploy/ENV.previous-revision; DEPLOY_STATE_DIR moves it) and
# scripts/rollback.sh returns to it: a failed deploy, the upgrade itself included, is not rolled
# back by this script. helm and kubectl come from PATH, else scripts/lib.sh installs the pinned ones.
#
#   scripts/deploy.sh ENV [--image REPO:TAG | --image REPO@sha256:...] [--loadtest-image IMAGE]
#                         [--timeout 15m] [--dry-run]
#
# --loadtest-image (the same two forms) installs the chart's load-test Job with the release, for
# scripts/load-test.sh to run; the deploy's own helm test leaves it out. Production never gets it
# (its sign-ups would write to production's database, and a plain helm test would run it): there
# the option is reported and left out.
# ENV is development, staging or production. --timeout is the budget of the whole deploy, from the
# upgrade on: the upgrade, the waits and helm test share it. --dry-run renders the manifests with
# `helm template` (same chart, values and image) to standard output and prints the commands it
# would run; it needs no cluster. Exit 0 deployed (or awaiting promotion), 1 failed, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deploy-lib.sh
source scripts/deploy-lib.sh

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

env_name=""
image=""
loadtest_image=""
timeout=15m
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image="${2:?--image needs a value}"; shift ;;
    --loadtest-image) loadtest_image="${2:?--loadtest-image needs a value}"; shift ;;
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

values="k8s/overlays/$env_name/values.yaml"
# An image's values: by digest when one is given (what was pushed and signed), else by tag.
# image_values PREFIX OPTION REF appends to image_args.
image_args=()
image_values() {
  if [[ "$3" == *@sha256:* ]]; then
    image_args+=(--set-string "$1.repository=${3%@*}" --set-string "$1.digest=${3#*@}")
  elif [[ "${3##*/}" == *:* ]]; then
    image_args+=(--set-string "$1.repository=${3%:*}" --set-string "$1.tag=${3##*:}")
  else
    echo "$2: REPO:TAG or REPO@sha256:DIGEST" >&2
    exit 2
  fi
}
[ -z "$image" ] || image_values image --image "$image"
if [ -n "$loadtest_image" ]; then
  service_image_args=("${image_args[@]}")
  image_values loadTest.image --loadtest-image "$loadtest_image"
  if [ "$env_name" = production ]; then
    echo "production: the load test is not installed (its sign-ups would write to production's database)" >&2
    image_args=("${service_image_args[@]}")
  else
    image_args+=(--set loadTest.enabled=true)
  fi
fi
chart_args=("$RELEASE" k8s/chart --namespace "$namespace" -f "$values" "${image_args[@]}")

ensure_helm
# The objects to wait on: those of this environment's render.
rendered=$(helm template "${chart_args[@]}")
rollouts=$(rollouts_in <<<"$rendered")

if [ "$dry_run" -eq 1 ]; then
  {
    printf 'would run: kubectl apply -f k8s/overlays/%s/namespace.yaml\n' "$env_name"
    printf 'would run: helm upgrade --install --timeout %s' "$timeout"
    printf ' %q' "${chart_args[@]}"
    printf '\n'
    manifest_objects <<<"$rendered" | while read -r kind name; do
      case "$kind" in
        Deployment|StatefulSet|DaemonSet)
          printf 'would run: kubectl rollout status %s/%s --namespace %s --timeout <left of %s>\n' \
            "${kind,,}" "$name" "$namespace" "$timeout" ;;
        PersistentVolumeClaim)
          printf 'would wait: persistentvolumeclaim/%s Bound, or Pending on a WaitForFirstConsumer storage class\n' "$name" ;;
      esac
    done
    for name in $rollouts; do
      printf 'would run: k8s/scripts/rollout-status.py %s --namespace %s --timeout <left of %s> --accept-promotion-pause\n' \
        "$name" "$namespace" "$timeout"
    done
    printf 'would run: helm test %s --namespace %s --filter !name=%s --timeout <left of %s>\n' \
      "$RELEASE" "$namespace" "$LOAD_TEST_HOOK" "$timeout"
  } >&2
  printf '%s\n' "$rendered"
  exit 0
fi

# The namespace with its Pod Security labels (the same file Kustomize and Argo CD apply).
kubectl apply -f "k8s/overlays/$env_name/namespace.yaml"
# The records live only while this deploy is unfinished: scripts/rollback.sh and
# scripts/promote.sh act on them alone.
record=$(previous_record "$env_name")
promotion=$(promotion_record "$env_name")
mkdir -p "$(dirname "$record")"
rm -f "$record" "$promotion"
previous=$(helm list --namespace "$namespace" --filter "^${RELEASE}\$" --deployed --output json |
  python3 -c 'import json, sys; r = json.load(sys.stdin); print(r[0]["revision"] if r else "none")')
echo "$previous" > "$record"
echo "deploying $RELEASE to $namespace (live revision before: $previous; budget $timeout)" >&2
deadline=$((SECONDS + budget))
# Every failure from here on leaves the record for scripts/rollback.sh.
fail_deploy() {
  if [ "$previous" = none ]; then
    echo "deploy failed: $1; a first install, so scripts/rollback.sh $env_name leaves it for inspection" >&2
  else
    echo "deploy failed: $1; live before it was revision $previous, where scripts/rollback.sh $env_name returns" >&2
  fi
  exit 1
}
helm upgrade --install --timeout "$timeout" "${chart_args[@]}" || fail_deploy "the upgrade failed"
wait_for_release "$namespace" "$deadline" <<<"$rendered" || fail_deploy "the release did not come up"
awaiting=""
for name in $rollouts; do
  left=$(left_of "$deadline" "waiting on rollout/$name") || fail_deploy "out of time"
  outcome=$(k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --timeout "$left" --accept-promotion-pause) ||
    fail_deploy "rollout/$name did not come up"
  case "$outcome" in
    "awaiting-promotion "*) awaiting="$awaiting$name ${outcome#awaiting-promotion }"$'\n' ;;
    "healthy "*) ;;
    *) fail_deploy "rollout/$name: unexpected outcome '$outcome'" ;;
  esac
done
left=$(left_of "$deadline" "helm test") || fail_deploy "out of time"
helm test "$RELEASE" --namespace "$namespace" --filter "!name=$LOAD_TEST_HOOK" --timeout "$left" ||
  fail_deploy "helm test failed"
if [ -n "$awaiting" ]; then
  printf '%s' "$awaiting" > "$promotion"
  while read -r name hash; do
    echo "awaiting promotion: rollout/$name runs $hash on the preview Service $name-preview (analysis" \
      "passed, helm test passed); live is still revision $previous. Promote: scripts/promote.sh $env_name;" \
      "discard: scripts/rollback.sh $env_name" >&2
  done < "$promotion"
  exit 0
fi
rm -f "$record"
echo "deployed: $RELEASE in $namespace is live" >&2
