# shellcheck shell=bash
# What scripts/deploy.sh, scripts/promote.sh and scripts/rollback.sh share: the release, its
# namespace per environment, the records a deploy leaves while it is unfinished, how a release is
# waited on, time budgets and the objects of a manifest. Sourced, never run.

# shellcheck disable=SC2034  # read by the scripts that source this file
RELEASE=devsecops-app
# The chart's load-test hooks (the Job and its NetworkPolicy share the name): only
# scripts/load-test.sh runs them; the deploy's and the promotion's helm test leave them out.
LOAD_TEST_HOOK="$RELEASE-loadtest"

# environment_namespace ENV: the namespace of a known environment, or exit 2.
environment_namespace() {
  case "$1" in
    development|staging|production) echo "devsecops-$1" ;;
    *) echo "environment: development, staging or production (not '${1}')" >&2; return 2 ;;
  esac
}

# The records of an unfinished deploy (DEPLOY_STATE_DIR moves them): the revision that was live
# before it (scripts/rollback.sh returns there) and, for a blue-green update waiting for its
# promotion, "ROLLOUT HASH" (scripts/promote.sh promotes exactly that).
previous_record() { echo "${DEPLOY_STATE_DIR:-reports/deploy}/$1.previous-revision"; }
promotion_record() { echo "${DEPLOY_STATE_DIR:-reports/deploy}/$1.awaiting-promotion"; }

# helm and kubectl from PATH, else the project's pinned ones (scripts/lib.sh).
ensure_helm() {
  if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
    # shellcheck source=scripts/lib.sh
    source scripts/lib.sh
    ensure_kube_tools "$TOOLS_CACHE"
  fi
}

# Helm is not asked to wait, on any version: its legacy checks (Helm 3's --wait, Helm 4's
# --wait=legacy) wait for every PersistentVolumeClaim to be Bound, and a claim whose storage class
# binds WaitForFirstConsumer (k3s local-path, among others) stays Pending until a pod that mounts it
# is scheduled: the backups claim, mounted by a CronJob alone, would hold every deploy until its
# timeout and roll it back (helm pkg/kube/ready.go volumeReady). Helm 4's default watcher cannot
# read an Argo Rollout at all (observedGeneration is a string: helm/helm#32615). Helm's own
# rollback on failure (--atomic, --rollback-on-failure) implies one of those waits, so it is not
# used either: a failed deploy keeps its record and scripts/rollback.sh returns to the revision
# before it. wait_for_release below waits the way the legacy checks do where they are right.

# wait_for_release NAMESPACE DEADLINE < MANIFEST: waits, within DEADLINE (in $SECONDS' clock), for
# what a rendered manifest runs, except its Rollouts (the callers wait on them through
# k8s/scripts/rollout-status.py): Deployments, StatefulSets and DaemonSets rolled out
# (`kubectl rollout status`: the new spec observed, every updated pod available), then each
# PersistentVolumeClaim Bound, or Pending on a storage class that binds WaitForFirstConsumer (it
# binds when its first pod is scheduled; the workloads that mount it were waited on above). A claim
# that is Lost, or Pending on a storage class that binds at once (or on none that exists), fails
# when the budget is spent.
wait_for_release() {
  local namespace="$1" deadline="$2" entry kind name left
  local -a objects claims=()
  mapfile -t objects < <(manifest_objects)
  for entry in "${objects[@]}"; do
    read -r kind name <<<"$entry"
    case "$kind" in
      Deployment|StatefulSet|DaemonSet)
        left=$(left_of "$deadline" "${kind,,}/$name is rolled out") || return 1
        kubectl rollout status "${kind,,}/$name" --namespace "$namespace" --timeout "$left" >&2 || return 1 ;;
      PersistentVolumeClaim) claims+=("$name") ;;
    esac
  done
  for name in "${claims[@]}"; do
    wait_for_claim "$namespace" "$deadline" "$name" || return 1
  done
}

# wait_for_claim NAMESPACE DEADLINE NAME: see wait_for_release.
wait_for_claim() {
  local namespace="$1" deadline="$2" name="$3" phase class mode why
  while :; do
    phase=$(kubectl get persistentvolumeclaim "$name" --namespace "$namespace" -o 'jsonpath={.status.phase}') || return 1
    case "$phase" in
      Bound) return 0 ;;
      Pending)
        # The default storage class is written into the claim when it is created.
        class=$(kubectl get persistentvolumeclaim "$name" --namespace "$namespace" -o 'jsonpath={.spec.storageClassName}') ||
          return 1
        if [ -z "$class" ]; then
          why="no storage class"
        elif mode=$(kubectl get storageclass "$class" -o 'jsonpath={.volumeBindingMode}' 2>&1); then
          if [ "$mode" = WaitForFirstConsumer ]; then
            echo "persistentvolumeclaim/$name: Pending until its first pod is scheduled" \
              "(storage class $class binds WaitForFirstConsumer)" >&2
            return 0
          fi
          why="storage class $class binds ${mode:-Immediate}"
        else
          why="storage class $class: $mode"
        fi ;;
      *) echo "persistentvolumeclaim/$name: ${phase:-no phase}" >&2; return 1 ;;
    esac
    if [ $((deadline - SECONDS)) -le 0 ]; then
      echo "persistentvolumeclaim/$name: still Pending ($why): no volume bound to it" >&2
      return 1
    fi
    sleep "${ROLLOUT_STATUS_INTERVAL:-2}"
  done
}

# promotion_patch HASH: the JSON patch of the Rollout's status subresource that promotes a
# blue-green update paused for promotion, as `kubectl argo rollouts promote` does (argoproj/
# argo-rollouts pkg/kubectl-argo-rollouts/cmd/promote/promote.go: pauseConditions cleared), and only
# while the update is HASH paused by BlueGreenPause: its test operations make the API server refuse
# the patch if the Rollout moved on to another pod template meanwhile.
promotion_patch() {
  printf '[{"op":"test","path":"/status/currentPodHash","value":"%s"},' "$1"
  printf '{"op":"test","path":"/status/pauseConditions/0/reason","value":"BlueGreenPause"},'
  printf '{"op":"remove","path":"/status/pauseConditions"}]'
}

# promote_rollout NAMESPACE NAME HASH: applies promotion_patch HASH to rollout NAME.
promote_rollout() {
  kubectl patch rollout "$2" --namespace "$1" --subresource status --type json -p "$(promotion_patch "$3")" >&2
}

# duration_seconds 1h30m: a Go duration (h, m, s; whole numbers) in seconds, or exit 2.
duration_seconds() {
  local rest="$1" total=0
  [[ "$rest" =~ ^([0-9]+[hms])+$ ]] || { echo "not a duration: '$1' (e.g. 15m, 1h30m, 600s)" >&2; return 2; }
  while [[ "$rest" =~ ^([0-9]+)([hms])(.*)$ ]]; do
    case "${BASH_REMATCH[2]}" in
      h) total=$((total + 10#${BASH_REMATCH[1]} * 3600)) ;;
      m) total=$((total + 10#${BASH_REMATCH[1]} * 60)) ;;
      s) total=$((total + 10#${BASH_REMATCH[1]})) ;;
    esac
    rest="${BASH_REMATCH[3]}"
  done
  [ "$total" -gt 0 ] || { echo "not a duration: '$1' (zero)" >&2; return 2; }
  echo "$total"
}

# left_of DEADLINE WHAT: the seconds left until DEADLINE (in $SECONDS' clock) as a Helm duration,
# or a failure naming WHAT when the budget is spent.
left_of() {
  local left=$(($1 - SECONDS))
  if [ "$left" -le 0 ]; then
    echo "the time budget is spent before $2" >&2
    return 1
  fi
  echo "${left}s"
}

# manifest_objects < MANIFEST: "KIND NAME" for each object of a rendered manifest (helm template,
# helm get manifest: top-level kind, the name two spaces into metadata).
manifest_objects() {
  awk '
    /^---/ { kind = ""; meta = 0 }
    /^kind: / { kind = $2 }
    /^metadata:/ { meta = 1 }
    /^[^ #-]/ && !/^metadata:/ { meta = 0 }
    meta && kind != "" && /^  name: / { print kind, $2; meta = 0 }'
}

# rollouts_in < MANIFEST: the names of the Rollouts in a rendered manifest.
rollouts_in() { manifest_objects | awk '$1 == "Rollout" { print $2 }'; }
