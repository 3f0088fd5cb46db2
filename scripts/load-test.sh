#!/usr/bin/env bash
# Runs the chart's load test against the version deployed to ENV: `helm test` of the load-test hooks
# only (k8s/chart/templates/tests/loadtest-job.yaml: a Job running the loadtest image in the
# cluster, against the release's Service, on blue-green its preview Service), then prints the Job's
# log, the load test's summary (helm test --logs asks for Pods of the hooks' names, and on Helm 3
# fails on a Job), once it has checked that this run's Job exists and succeeded. The
# release must carry the load test: scripts/deploy.sh ENV --loadtest-image IMAGE installs it. A
# release without it fails here: a load test that did not run never passes.
# The sign-up scenario writes users into ENV's database: the Jenkins pipeline runs this on
# development and staging only.
#
#   scripts/load-test.sh ENV [--timeout 15m] [--dry-run]
#
# Exit 0 every threshold passed; 1 a threshold failed, the Job failed or timed out, or the release
# has no load test; 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deploy-lib.sh
source scripts/deploy-lib.sh

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

env_name=""
timeout=15m
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) [ $# -ge 2 ] || { usage >&2; exit 2; }; timeout="$2"; shift ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$env_name" ] || { echo "one environment only" >&2; exit 2; }; env_name="$1" ;;
  esac
  shift
done
namespace=$(environment_namespace "$env_name") || { usage >&2; exit 2; }
duration_seconds "$timeout" >/dev/null || exit 2

if [ "$dry_run" -eq 1 ]; then
  printf 'would run: helm get hooks %s --namespace %s\n' "$RELEASE" "$namespace"
  printf 'would run: helm test %s --namespace %s --filter name=%s --timeout %s\n' \
    "$RELEASE" "$namespace" "$LOAD_TEST_HOOK" "$timeout"
  printf 'would run: kubectl get job %s --namespace %s (before and after: a new Job that succeeded)\n' \
    "$LOAD_TEST_HOOK" "$namespace"
  printf 'would run: kubectl logs job/%s --namespace %s\n' "$LOAD_TEST_HOOK" "$namespace"
  exit 0
fi

ensure_helm
# helm test with a filter that matches nothing runs nothing and passes: check the hook is there.
hooks=$(helm get hooks "$RELEASE" --namespace "$namespace") || {
  echo "load test: cannot read release $RELEASE in $namespace" >&2
  exit 1
}
# One YAML document per hook; the Job is the one of kind Job with the hook's name.
has_job=$(awk -v name="$LOAD_TEST_HOOK" '
  /^---/ { if (job && named) found = 1; job = named = 0; next }
  /^kind: Job[[:space:]]*$/ { job = 1 }
  $0 ~ "^  name: \"?" name "\"?[[:space:]]*$" { named = 1 }
  END { if (job && named) found = 1; print found ? "yes" : "no" }' <<<"$hooks")
if [ "$has_job" != yes ]; then
  echo "load test: release $RELEASE in $namespace has no load-test Job $LOAD_TEST_HOOK;" \
    "deploy it with scripts/deploy.sh $env_name --loadtest-image IMAGE" >&2
  exit 1
fi
# The Job of an earlier run, if one is kept: this run's must be another (helm recreates it).
earlier=$(kubectl get job "$LOAD_TEST_HOOK" --namespace "$namespace" -o jsonpath='{.metadata.uid}' 2>/dev/null) ||
  earlier=""
status=0
helm test "$RELEASE" --namespace "$namespace" --filter "name=$LOAD_TEST_HOOK" --timeout "$timeout" || status=1
# helm's word alone is not enough: Helm 3 takes a hook deleted while it waits (another helm test,
# an operator) for a success. The Job must be this run's and must have succeeded.
job=$(kubectl get job "$LOAD_TEST_HOOK" --namespace "$namespace" \
  -o jsonpath='{.metadata.uid} {.status.succeeded}') || job=""
uid=${job%% *}
succeeded=${job#"$uid"}
succeeded=${succeeded# }
if [ -z "$uid" ] || [ "$uid" = "$earlier" ]; then
  echo "load test: no Job of this run in $namespace (gone, or never created): nothing was measured" >&2
  exit 1
fi
# The summary, passed or failed (the Job stays until the next run or its TTL).
kubectl logs "job/$LOAD_TEST_HOOK" --namespace "$namespace" || echo "load test: the Job's log is gone" >&2
if [ "$status" -eq 0 ] && [ "$succeeded" != 1 ]; then
  echo "load test: helm test passed but the Job did not succeed" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "load test failed in $namespace: a threshold failed, or the Job did not finish (its log above)" >&2
fi
exit "$status"
