#!/usr/bin/env bash
# kustomize 5.7 (inside kubectl 1.34) accepts only Helm 3: it probes `helm version -c --short` and
# refuses a v4 answer, although it then calls nothing but `helm template`, which Helm 4 runs the
# same way. With Helm 3 on PATH this shim is not needed; with Helm 4:
#   kubectl kustomize --enable-helm --helm-command k8s/scripts/helm-for-kustomize.sh k8s/overlays/production
set -euo pipefail
if [ "${1:-}" = "version" ]; then
  real=$("${HELM:-helm}" version --short)
  case "$real" in
    v3.*) echo "$real" ;;
    v4.*) echo "v3.99.0+helm-${real}" ;;  # the template interface kustomize uses is unchanged
    *) echo "$real" ;;
  esac
  exit 0
fi
exec "${HELM:-helm}" "$@"
