#!/usr/bin/env bash
# Deploys devsecops-app to one environment with Helm: the chart in k8s/chart with that environment's
# values (k8s/overlays/ENV/values.yaml) into namespace devsecops-ENV. Helm rolls a failed upgrade
# back by itself (--rollback-on-failure; --atomic on Helm 3) and waits for what it can read: its
# legacy readiness checks, which pass over custom resources, because Helm 4's default status
# watcher cannot read an Argo Rollout (observedGeneration is a string: helm/helm#32615) and would
# time out and roll back every deploy. A Rollout is then waited on through its own status
# (k8s/scripts/rollout-status.py, as `kubectl argo rollouts status` does); `helm test` then checks
# the running release. While the deploy is
# unfinished the revision that was live before is recorded (reports/deploy/ENV.previous-revision), so
# scripts/rollback.sh can return to it when the deploy fails after the upgrade (DEPLOY_STATE_DIR
# moves that record elsewhere).
# helm and kubectl come from PATH, else scripts/lib.sh installs the project's pinned ones.
#
#   scripts/deploy.sh ENV [--image REPO:TAG | --image REPO@sha256:...] [--timeout 10m] [--dry-run]
#
# ENV is development, staging or production. --dry-run renders the manifests with `helm template`
# (same chart, values and image) to standard output and prints the commands it would run; it needs
# no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASE=devsecops-app
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

env_name=""
image=""
timeout=10m
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image="${2:?--image needs a value}"; shift ;;
    --timeout) timeout="${2:?--timeout needs a value}"; shift ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$env_name" ] || { echo "one environment only" >&2; exit 2; }; env_name="$1" ;;
  esac
  shift
done
case "$env_name" in
  development|staging|production) ;;
  *) echo "environment: development, staging or production" >&2; usage >&2; exit 2 ;;
esac

namespace="devsecops-$env_name"
values="k8s/overlays/$env_name/values.yaml"
# The image: by digest when one is given (what was pushed and signed), else by tag.
image_args=()
if [ -n "$image" ]; then
  if [[ "$image" == *@sha256:* ]]; then
    image_args=(--set-string "image.repository=${image%@*}" --set-string "image.digest=${image#*@}")
  elif [[ "${image##*/}" == *:* ]]; then
    image_args=(--set-string "image.repository=${image%:*}" --set-string "image.tag=${image##*:}")
  else
    echo "--image: REPO:TAG or REPO@sha256:DIGEST" >&2
    exit 2
  fi
fi
chart_args=("$RELEASE" k8s/chart --namespace "$namespace" -f "$values" "${image_args[@]}")

if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  # shellcheck source=scripts/lib.sh
  source scripts/lib.sh
  ensure_kube_tools "$TOOLS_CACHE"
fi
# Helm 4 renamed --atomic and made --wait a strategy; Helm 3's --wait is the legacy checks.
if helm version --short 2>/dev/null | grep -q '^v3\.'; then
  upgrade_flags=(--atomic --wait)
else
  upgrade_flags=(--rollback-on-failure --wait=legacy)
fi
# The Rollout to wait on, if this environment's render has one.
rollout=$(helm template "${chart_args[@]}" 2>/dev/null | awk '
  /^---/ { kind = ""; meta = 0 }
  /^kind: / { kind = $2 }
  /^metadata:/ { meta = 1 }
  meta && kind == "Rollout" && /^  name: / { print $2; meta = 0 }')

if [ "$dry_run" -eq 1 ]; then
  {
    printf 'would run: kubectl apply -f k8s/overlays/%s/namespace.yaml\n' "$env_name"
    printf 'would run: helm upgrade --install %s --timeout %s' "${upgrade_flags[*]}" "$timeout"
    printf ' %q' "${chart_args[@]}"
    printf '\n'
    for name in $rollout; do
      printf 'would run: k8s/scripts/rollout-status.py %s --namespace %s --timeout %s\n' "$name" "$namespace" "$timeout"
    done
    printf 'would run: helm test %s --namespace %s\n' "$RELEASE" "$namespace"
  } >&2
  helm template "${chart_args[@]}"
  exit 0
fi

# The namespace with its Pod Security labels (the same file Kustomize and Argo CD apply).
kubectl apply -f "k8s/overlays/$env_name/namespace.yaml"
# The record lives only while this deploy is unfinished: scripts/rollback.sh acts on it alone.
state_dir="${DEPLOY_STATE_DIR:-reports/deploy}"
record="$state_dir/$env_name.previous-revision"
mkdir -p "$state_dir"
rm -f "$record"
previous=$(helm list --namespace "$namespace" --filter "^${RELEASE}\$" --deployed --output json |
  python3 -c 'import json, sys; r = json.load(sys.stdin); print(r[0]["revision"] if r else "none")')
echo "$previous" > "$record"
echo "deploying $RELEASE to $namespace (live revision before: $previous)" >&2
helm upgrade --install "${upgrade_flags[@]}" --timeout "$timeout" "${chart_args[@]}"
for name in $rollout; do
  k8s/scripts/rollout-status.py "$name" --namespace "$namespace" --timeout "$timeout"
done
helm test "$RELEASE" --namespace "$namespace" --timeout 5m
rm -f "$record"
