#!/usr/bin/env bash
# Rotates the devsecops-app API token: writes a new random token into the Secret, restarts the pods
# (the token is read at start), waits for the rollout, and checks readiness. Clients must switch to the
# new token; see docs/kubernetes.md, "Rotating the API token".
#
#   k8s/scripts/rotate-secret.sh [--namespace NS] [--secret NAME] [--key KEY] [--workload KIND/NAME] [--dry-run]
# KIND/NAME: deployment/devsecops-app (default) or rollout/devsecops-app (Argo Rollouts).
set -euo pipefail

NAMESPACE=devsecops-production
SECRET=devsecops-app-auth
KEY=api-token
WORKLOAD=deployment/devsecops-app
DRY_RUN=0
KUBECTL="${KUBECTL:-kubectl}"

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) NAMESPACE="${2:?}"; shift ;;
    --secret) SECRET="${2:?}"; shift ;;
    --key) KEY="${2:?}"; shift ;;
    --workload) WORKLOAD="${2:?}"; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

run() {
  if [ "$DRY_RUN" -eq 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

# 48 hex characters: accepted by production mode (long, varied, no dictionary words).
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
[ "${#token}" -eq 48 ] || { echo "could not generate a token" >&2; exit 1; }

if [ "$DRY_RUN" -eq 1 ]; then
  run "$KUBECTL" -n "$NAMESPACE" create secret generic "$SECRET" "--from-literal=$KEY=<new token>"
else
  # Apply, not create: the Secret may exist already. The token goes through stdin, never argv.
  printf '%s' "$token" | "$KUBECTL" -n "$NAMESPACE" create secret generic "$SECRET" \
    --from-file="$KEY=/dev/stdin" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
fi
run "$KUBECTL" -n "$NAMESPACE" annotate secret "$SECRET" --overwrite \
  "devsecops.dev/rotated-at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
case "$WORKLOAD" in
  rollout/*|rollouts/*)
    # Argo Rollouts restarts its pods when spec.restartAt moves forward.
    run "$KUBECTL" -n "$NAMESPACE" patch "$WORKLOAD" --type merge \
      -p "{\"spec\":{\"restartAt\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}"
    ;;
  *)
    run "$KUBECTL" -n "$NAMESPACE" rollout restart "$WORKLOAD"
    run "$KUBECTL" -n "$NAMESPACE" rollout status "$WORKLOAD" --timeout=5m
    ;;
esac
echo "rotated $NAMESPACE/$SECRET ($KEY); hand the new token to clients from the Secret, not from this output"
