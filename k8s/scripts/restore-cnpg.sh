#!/usr/bin/env bash
# Restores the service's CloudNativePG database into a new cluster and moves the release to it:
# checks the backup and the names first, upgrades the release with the chart's recovery values
# (database.cloudnativepg.{clusterName,recovery.*}), waits for the new cluster and for the service
# to roll onto it. The old cluster keeps running (the chart's resource policy keeps it) until you
# delete it. See docs/kubernetes.md, "Restoring a CloudNativePG database".
#
#   k8s/scripts/restore-cnpg.sh --new-cluster NAME (--from-cluster OLD [--target-time RFC3339] | --backup BACKUP)
#       [--namespace NS] [--release NAME] [--workload KIND/NAME] [--timeout DURATION] [--values-only] [--dry-run]
#
# --from-cluster: the old cluster's base backups and WAL in the object store (point in time with
# --target-time). --backup: a completed volume snapshot Backup. --values-only prints the values to
# commit where Argo CD owns the release (a manual upgrade would be reverted) and changes nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NAMESPACE=devsecops-staging
RELEASE=devsecops-app
WORKLOAD=""
NEW_CLUSTER=""
FROM_CLUSTER=""
BACKUP=""
TARGET_TIME=""
TIMEOUT=30m
VALUES_ONLY=0
DRY_RUN=0
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "restore-cnpg: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --new-cluster) NEW_CLUSTER="${2:?--new-cluster needs a name}"; shift ;;
    --from-cluster) FROM_CLUSTER="${2:?--from-cluster needs a name}"; shift ;;
    --backup) BACKUP="${2:?--backup needs a name}"; shift ;;
    --target-time) TARGET_TIME="${2:?--target-time needs a time}"; shift ;;
    --namespace) NAMESPACE="${2:?}"; shift ;;
    --release) RELEASE="${2:?}"; shift ;;
    --workload) WORKLOAD="${2:?}"; shift ;;
    --timeout) TIMEOUT="${2:?}"; shift ;;
    --values-only) VALUES_ONLY=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

usage_error() { echo "$*" >&2; usage >&2; exit 2; }
[ -n "$NEW_CLUSTER" ] || usage_error "--new-cluster is required"
[[ "$NEW_CLUSTER" =~ ^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$ ]] || usage_error "--new-cluster: a DNS label of at most 50 characters"
if [ -n "$FROM_CLUSTER" ] && [ -n "$BACKUP" ]; then usage_error "--from-cluster or --backup, not both"; fi
if [ -z "$FROM_CLUSTER" ] && [ -z "$BACKUP" ]; then usage_error "--from-cluster or --backup is required"; fi
if [ -n "$TARGET_TIME" ] && [ -z "$FROM_CLUSTER" ]; then usage_error "--target-time needs --from-cluster (a WAL archive)"; fi
if [ -n "$TARGET_TIME" ] && ! [[ "$TARGET_TIME" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ ]]; then
  usage_error "--target-time: RFC 3339, e.g. 2026-11-20T10:00:00Z"
fi
[ "$NEW_CLUSTER" != "$FROM_CLUSTER" ] || usage_error "--new-cluster must differ from --from-cluster: a restore never overwrites"

run() {
  if [ "$DRY_RUN" -eq 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
say() { printf '==> %s\n' "$*" >&2; }

# The values that move the release onto the restored cluster.
VALUES=(--set "database.cloudnativepg.clusterName=$NEW_CLUSTER" --set database.cloudnativepg.recovery.enabled=true)
if [ -n "$FROM_CLUSTER" ]; then
  VALUES+=(--set "database.cloudnativepg.recovery.sourceCluster=$FROM_CLUSTER")
  [ -z "$TARGET_TIME" ] || VALUES+=(--set "database.cloudnativepg.recovery.targetTime=$TARGET_TIME")
else
  VALUES+=(--set "database.cloudnativepg.recovery.backupName=$BACKUP")
fi

if [ "$VALUES_ONLY" -eq 1 ]; then
  printf 'database:\n  cloudnativepg:\n    clusterName: %s\n    recovery:\n      enabled: true\n' "$NEW_CLUSTER"
  if [ -n "$FROM_CLUSTER" ]; then
    printf '      sourceCluster: %s\n' "$FROM_CLUSTER"
    [ -z "$TARGET_TIME" ] || printf '      targetTime: "%s"\n' "$TARGET_TIME"
  else
    printf '      backupName: %s\n' "$BACKUP"
  fi
  exit 0
fi

# Checks before anything changes; they also run with --dry-run (they only read).
say "checking $NAMESPACE: release $RELEASE, the backup, the new name"
"$HELM" status "$RELEASE" --namespace "$NAMESPACE" >/dev/null 2>&1 || die "no release $RELEASE in $NAMESPACE"
if "$KUBECTL" -n "$NAMESPACE" get clusters.postgresql.cnpg.io "$NEW_CLUSTER" >/dev/null 2>&1; then
  die "a cluster named $NEW_CLUSTER exists already in $NAMESPACE: choose a new name"
fi
if [ -n "$BACKUP" ]; then
  phase=$("$KUBECTL" -n "$NAMESPACE" get backups.postgresql.cnpg.io "$BACKUP" -o 'jsonpath={.status.phase}') \
    || die "no Backup $BACKUP in $NAMESPACE (kubectl -n $NAMESPACE get backups)"
  [ "$phase" = completed ] || die "Backup $BACKUP is '$phase', not completed"
  method=$("$KUBECTL" -n "$NAMESPACE" get backups.postgresql.cnpg.io "$BACKUP" -o 'jsonpath={.spec.method}')
  [ "$method" = volumeSnapshot ] || die "Backup $BACKUP was taken by '$method': restore object store backups with --from-cluster"
else
  # At least one completed base backup of the old cluster: WAL alone restores nothing.
  phases=$("$KUBECTL" -n "$NAMESPACE" get backups.postgresql.cnpg.io \
    -o "jsonpath={range .items[?(@.spec.cluster.name==\"$FROM_CLUSTER\")]}{.status.phase}{\"\\n\"}{end}") \
    || die "cannot list the Backups in $NAMESPACE"
  grep -qx completed <<<"$phases" || die "no completed base backup of $FROM_CLUSTER in $NAMESPACE (kubectl -n $NAMESPACE get backups)"
fi

if [ -z "$WORKLOAD" ]; then
  if "$KUBECTL" -n "$NAMESPACE" get rollouts.argoproj.io "$RELEASE" >/dev/null 2>&1; then
    WORKLOAD="rollout/$RELEASE"
  else
    WORKLOAD="deployment/$RELEASE"
  fi
fi

say "restoring into $NEW_CLUSTER and moving $RELEASE onto it"
run "$HELM" upgrade "$RELEASE" "$ROOT/k8s/chart" --namespace "$NAMESPACE" --reuse-values "${VALUES[@]}"
run "$KUBECTL" -n "$NAMESPACE" wait "clusters.postgresql.cnpg.io/$NEW_CLUSTER" --for=condition=Ready --timeout="$TIMEOUT"
case "$WORKLOAD" in
  rollout/*) run "$ROOT/k8s/scripts/rollout-status.py" "${WORKLOAD#rollout/}" --namespace "$NAMESPACE" --timeout "$TIMEOUT" ;;
  *) run "$KUBECTL" -n "$NAMESPACE" rollout status "$WORKLOAD" --timeout="$TIMEOUT" ;;
esac

old=${FROM_CLUSTER:-the cluster $BACKUP was taken from}
cat >&2 <<EOF
restored: $RELEASE in $NAMESPACE now uses $NEW_CLUSTER.
Next:
  - commit the values (k8s/scripts/restore-cnpg.sh --values-only with the same arguments) into the
    environment's values.yaml, or the next deploy moves the release back to its old cluster;
  - check the data, then delete $old: kubectl -n $NAMESPACE delete clusters.postgresql.cnpg.io <old name>
EOF
