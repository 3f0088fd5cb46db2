#!/usr/bin/env bash
# Sets up a single-node MicroK8s on Ubuntu with the platform: addons (dns, ingress, metrics-server,
# hostpath storage, registry), the ingress addon's Traefik with the service's request limits and
# a JSON access log, then Prometheus (with the project's rules and Alertmanager routes), Loki,
# Alloy, Grafana (datasources and the project's dashboards, delivered once), Jenkins, SonarQube,
# what the environment's chart needs (Argo Rollouts, CloudNativePG, prometheus-adapter) and
# devsecops-app itself, each with its values file from k8s/platform/ and k8s/overlays/. Safe to run
# again: it skips what is already in place. On a fresh host the user joins the microk8s group (in
# effect from the next login); until then this script reaches MicroK8s through sudo.
#
#   k8s/microk8s/setup.sh [--dry-run] [--env development|staging|production] [--skip-ci]
#
# --dry-run prints every command it would run and changes nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DRY_RUN=0
ENVIRONMENT=development
SKIP_CI=0
ADDONS=(dns ingress metrics-server hostpath-storage registry)
MONITORING_NS=monitoring
CI_NS=ci
# 1.35 is the first release whose ingress addon is Traefik (canonical/microk8s-core-addons#375);
# the limits below are Traefik's.
CHANNEL="${MICROK8S_CHANNEL:-1.35/stable}"
INGRESS_NS=ingress

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --env) ENVIRONMENT="${2:?--env needs a value}"; shift ;;
    --skip-ci) SKIP_CI=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$ENVIRONMENT" in development|staging|production) ;; *) echo "--env: development, staging or production" >&2; exit 2 ;; esac

say() { printf '==> %s\n' "$*"; }
# run CMD...: runs a command, or prints it in dry-run mode.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

# How MicroK8s is reached: directly when this user may (root, or a member of the microk8s group in
# this session), else through sudo: `microk8s status` refuses with "Insufficient permissions".
MICROK8S=(microk8s)
kubectl_() { "${MICROK8S[@]}" kubectl "$@"; }
helm_() { "${MICROK8S[@]}" helm3 "$@"; }

ensure_access() {
  if [ "$(id -u)" -eq 0 ] || id -nG | tr ' ' '\n' | grep -qx microk8s; then
    return 0
  fi
  local user
  user=$(id -un)
  say "adding $user to the microk8s group (in effect from the next login); sudo until then"
  if ! getent group microk8s | cut -d: -f4 | tr ',' '\n' | grep -qx "$user"; then
    run sudo usermod -a -G microk8s "$user"
  fi
  MICROK8S=(sudo microk8s)
}

ensure_microk8s() {
  if command -v microk8s >/dev/null 2>&1; then
    say "microk8s is installed"
  else
    say "installing microk8s ($CHANNEL)"
    run sudo snap install microk8s --classic --channel="$CHANNEL"
  fi
  ensure_access
  if [ "$DRY_RUN" -eq 0 ]; then
    "${MICROK8S[@]}" status --wait-ready >/dev/null
  fi
}

enabled_addons() {
  if [ "$DRY_RUN" -eq 1 ] && ! command -v microk8s >/dev/null 2>&1; then
    return 0
  fi
  "${MICROK8S[@]}" status --format short 2>/dev/null | awk -F': ' '$2 == "enabled" {sub(/^.*\//, "", $1); print $1}'
}

ensure_addons() {
  local enabled addon
  enabled=$(enabled_addons)
  for addon in "${ADDONS[@]}"; do
    if grep -qx "$addon" <<<"$enabled"; then
      say "addon $addon already enabled"
    else
      run "${MICROK8S[@]}" enable "$addon"
    fi
  done
}

ensure_namespace() {
  local ns="$1" enforce="$2"
  if [ "$DRY_RUN" -eq 1 ]; then
    run kubectl_ create namespace "$ns"
  else
    kubectl_ create namespace "$ns" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  fi
  run kubectl_ label namespace "$ns" --overwrite \
    "pod-security.kubernetes.io/enforce=$enforce" "pod-security.kubernetes.io/warn=restricted"
}

# ensure_configmap_from_file NS NAME FILE: creates or updates a ConfigMap holding FILE.
ensure_configmap_from_file() {
  local ns="$1" name="$2" file="$3"
  if [ "$DRY_RUN" -eq 1 ]; then
    run kubectl_ -n "$ns" create configmap "$name" --from-file="$file"
  else
    kubectl_ -n "$ns" create configmap "$name" --from-file="$file" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  fi
}

ensure_repo() {
  local name="$1" url="$2"
  if [ "$DRY_RUN" -eq 0 ] && helm_ repo list 2>/dev/null | awk '{print $1}' | grep -qx "$name"; then
    say "helm repo $name present"
  else
    run helm_ repo add "$name" "$url"
  fi
}

# release NAME CHART NAMESPACE ARGS...: install or upgrade (helm upgrade --install is idempotent).
release() {
  local name="$1" chart="$2" ns="$3"
  shift 3
  run helm_ upgrade --install "$name" "$chart" --namespace "$ns" --wait --timeout 10m "$@"
}

# The service's values on this path: the environment's own, then MicroK8s' facts.
APP_VALUES=(-f "$ROOT/k8s/overlays/$ENVIRONMENT/values.yaml" -f "$ROOT/k8s/platform/devsecops-app-microk8s.yaml")

# The service's render for this environment, with the same chart and values the release uses: its
# kinds say what it needs (a Rollout Argo Rollouts, a Cluster CloudNativePG, a Pods metric
# prometheus-adapter).
render_app() {
  local helm=(helm_)
  if ! command -v microk8s >/dev/null 2>&1; then
    command -v helm >/dev/null 2>&1 || { echo "neither microk8s nor helm: cannot render the chart" >&2; return 1; }
    helm=(helm)
  fi
  "${helm[@]}" template devsecops-app "$ROOT/k8s/chart" "${APP_VALUES[@]}"
}

# The addon's Traefik release, upgraded in place (same chart version, its values kept) with the
# service's limits and the access log (k8s/platform/traefik-values.json, shared with the appliance)
# and externalTrafficPolicy Local for a Service in front of it (k8s/platform/traefik-service-values.yaml:
# the addon runs on host ports without one, which keeps the client's address too).
# Entry point settings apply to every host behind the ingress (Grafana, Jenkins, SonarQube too).
configure_ingress() {
  local version=""
  if [ "$DRY_RUN" -eq 0 ] || command -v microk8s >/dev/null 2>&1; then
    version=$(helm_ list --namespace "$INGRESS_NS" --filter '^traefik$' -o json 2>/dev/null |
      sed -n 's/.*"chart":"traefik-\([^"]*\)".*/\1/p')
    if [ -z "$version" ] && [ "$DRY_RUN" -eq 0 ]; then
      echo "the ingress addon runs no Traefik release in namespace $INGRESS_NS (MicroK8s before 1.35 runs NGINX):" \
        "the ingress limits are Traefik's; refresh to 1.35 (snap refresh microk8s --channel=1.35/stable)" >&2
      return 1
    fi
  fi
  run helm_ upgrade traefik traefik/traefik --namespace "$INGRESS_NS" --reuse-values --version "${version:-DEPLOYED}" \
    --wait --timeout 10m -f "$ROOT/k8s/platform/traefik-values.json" -f "$ROOT/k8s/platform/traefik-service-values.yaml"
}

# The project's Alertmanager routes as the prometheus chart's alertmanager.config value.
alertmanager_values() {
  local file="$WORK/alertmanager-values.yaml"
  { printf 'alertmanager:\n  config:\n'; sed 's/^/    /' "$ROOT/observability/alertmanager/alertmanager.yml"; } > "$file"
  echo "$file"
}

main() {
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  ensure_microk8s
  ensure_addons
  local kinds rendered
  rendered=$(render_app)
  kinds=$(sed -n 's/^kind: //p' <<<"$rendered" | sort -u)

  ensure_repo traefik https://traefik.github.io/charts
  ensure_repo prometheus-community https://prometheus-community.github.io/helm-charts
  ensure_repo grafana https://grafana.github.io/helm-charts
  ensure_repo jenkins https://charts.jenkins.io
  ensure_repo sonarqube https://SonarSource.github.io/helm-chart-sonarqube
  if grep -qx Rollout <<<"$kinds"; then
    ensure_repo argo https://argoproj.github.io/argo-helm
  fi
  if grep -qx Cluster <<<"$kinds"; then
    ensure_repo cnpg https://cloudnative-pg.github.io/charts
  fi
  run helm_ repo update
  configure_ingress

  # Observability: privileged agents (Alloy reads node logs) get baseline, everything else restricted.
  ensure_namespace "$MONITORING_NS" baseline
  ensure_configmap_from_file "$MONITORING_NS" devsecops-app-rules \
    "$ROOT/observability/prometheus/rules/devsecops-app.rules.yml"
  release prometheus prometheus-community/prometheus "$MONITORING_NS" \
    -f "$ROOT/k8s/platform/prometheus-values.yaml" -f "$(alertmanager_values)"
  release loki grafana/loki "$MONITORING_NS" -f "$ROOT/k8s/platform/loki-values.yaml"
  release alloy grafana/alloy "$MONITORING_NS" -f "$ROOT/k8s/platform/alloy-values.yaml" \
    --set-file "alloy.configMap.content=$ROOT/observability/alloy/config.alloy"
  release grafana grafana/grafana "$MONITORING_NS" -f "$ROOT/k8s/platform/grafana-values.yaml"
  # The dashboards once, for every environment: ConfigMaps with fixed names in the shared namespace
  # cannot belong to each environment's release.
  if [ "$DRY_RUN" -eq 1 ]; then
    run kubectl_ apply -k "$ROOT/observability/grafana" -n "$MONITORING_NS"
  else
    kubectl_ apply -k "$ROOT/observability/grafana" -n "$MONITORING_NS" >/dev/null
  fi

  if [ "$SKIP_CI" -eq 0 ]; then
    ensure_namespace "$CI_NS" baseline
    release jenkins jenkins/jenkins "$CI_NS" -f "$ROOT/k8s/platform/jenkins-values.yaml"
    release sonarqube sonarqube/sonarqube "$CI_NS" -f "$ROOT/k8s/platform/sonarqube-values.yaml"
  fi

  # The operators the environment's custom resources need, with their CRDs.
  if grep -qx Rollout <<<"$kinds"; then
    release argo-rollouts argo/argo-rollouts argo-rollouts --create-namespace
  fi
  if grep -qx Cluster <<<"$kinds"; then
    release cnpg cnpg/cloudnative-pg cnpg-system --create-namespace
  fi
  # The custom metric of the request-rate autoscaler, from this Prometheus.
  if grep -Eq '^ *- type: Pods$' <<<"$rendered"; then
    release prometheus-adapter prometheus-community/prometheus-adapter "$MONITORING_NS" \
      -f "$ROOT/k8s/platform/prometheus-adapter-values.yaml"
  fi

  # The service, with the environment's values and MicroK8s' (ingress class and namespace, pod
  # network, the Prometheus the analysis asks; k8s/platform/prometheus-values.yaml scrapes it).
  local app_ns="devsecops-$ENVIRONMENT"
  ensure_namespace "$app_ns" restricted
  if [ "$DRY_RUN" -eq 1 ] || ! kubectl_ -n "$app_ns" get secret devsecops-app-auth >/dev/null 2>&1; then
    say "creating the API token secret (once; rotate with k8s/scripts/rotate-secret.sh)"
    if [ "$DRY_RUN" -eq 1 ]; then
      run kubectl_ -n "$app_ns" create secret generic devsecops-app-auth --from-literal=api-token=REDACTED
    else
      kubectl_ -n "$app_ns" create secret generic devsecops-app-auth \
        --from-literal=api-token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    fi
  fi
  release devsecops-app "$ROOT/k8s/chart" "$app_ns" "${APP_VALUES[@]}"
  run helm_ test devsecops-app --namespace "$app_ns"
  say "done: Grafana at http://grafana.local (see k8s/platform/grafana-values.yaml), the service in $app_ns"
}

main
