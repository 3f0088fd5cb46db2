#!/usr/bin/env bash
# Creates, or brings up to date, the SonarQube webhook that the Jenkinsfile's quality gate waits for:
# a global webhook named "jenkins" posting to Jenkins' /sonarqube-webhook/ endpoint, signed with the
# secret Jenkins checks (credential sonar-webhook-secret, the jenkins-credentials Secret's key
# sonar-webhook-secret). Safe to run again: it changes only what differs, then reads the webhook back.
#
#   SONAR_ADMIN_TOKEN=... k8s/platform/sonarqube-webhook.sh [--dry-run]
#
# SONAR_ADMIN_TOKEN  a token of a user with the global Administer permission (environment only)
# SONAR_URL          default http://sonarqube.local
# JENKINS_WEBHOOK_URL default http://jenkins.ci.svc.cluster.local:8080/sonarqube-webhook/
# SONAR_WEBHOOK_SECRET the secret; when unset it is read from Secret jenkins-credentials in
#                    namespace CI_NAMESPACE (default ci) with KUBECTL (default kubectl)
# --dry-run          reads the current webhooks and says what it would change, changes nothing.
# Tokens and the secret travel in curl's configuration on stdin, never on a command line.
set -euo pipefail

SONAR_URL="${SONAR_URL:-http://sonarqube.local}"
SONAR_URL="${SONAR_URL%/}"
WEBHOOK_NAME=jenkins
WEBHOOK_URL="${JENKINS_WEBHOOK_URL:-http://jenkins.ci.svc.cluster.local:8080/sonarqube-webhook/}"
CI_NAMESPACE="${CI_NAMESPACE:-ci}"
read -r -a KUBECTL_CMD <<<"${KUBECTL:-kubectl}"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
dry_run=0
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=1 ;;
  -h|--help) usage; exit 0 ;;
  *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
esac
[ -n "${SONAR_ADMIN_TOKEN:-}" ] || { echo "SONAR_ADMIN_TOKEN must hold a SonarQube token with the Administer permission" >&2; exit 2; }

secret="${SONAR_WEBHOOK_SECRET:-}"
if [ -z "$secret" ]; then
  encoded=$("${KUBECTL_CMD[@]}" -n "$CI_NAMESPACE" get secret jenkins-credentials \
    -o 'jsonpath={.data.sonar-webhook-secret}') ||
    { echo "cannot read key sonar-webhook-secret of Secret $CI_NAMESPACE/jenkins-credentials" >&2; exit 1; }
  secret=$(printf '%s' "$encoded" | base64 -d)
fi
# SonarQube takes 1 to 200 characters; a guessable secret would let anything in the cluster post a
# passing quality gate, so short ones are refused here.
if [ "${#secret}" -lt 32 ] || [ "${#secret}" -gt 200 ]; then
  echo "the webhook secret must have 32 to 200 characters (it has ${#secret}): openssl rand -hex 32" >&2
  exit 2
fi
case "$secret" in *[[:space:]\"\\]*) echo "the webhook secret must not contain spaces, quotes or backslashes" >&2; exit 2 ;; esac

# api METHOD PATH [NAME=VALUE...]: one Web API call; the token and every parameter go through curl's
# configuration on stdin. Prints the response body; on an HTTP error, SonarQube's answer goes to stderr.
api() {
  local method="$1" path="$2" pair body status=0
  shift 2
  body=$({
    printf 'header = "Authorization: Bearer %s"\n' "$SONAR_ADMIN_TOKEN"
    for pair in "$@"; do printf 'data-urlencode = "%s"\n' "$pair"; done
  } | curl -sS --fail-with-body --max-time 30 -K - -X "$method" "$SONAR_URL/$path") || status=$?
  if [ "$status" -ne 0 ]; then
    echo "SonarQube $method $path failed: ${body:-no response}" >&2
    return 1
  fi
  printf '%s' "$body"
}

# current prints "KEY<TAB>URL<TAB>SECRET" of the global webhook named jenkins, or nothing.
current() {
  local body
  body=$(api GET api/webhooks/list) || return 1
  printf '%s' "$body" | python3 -c '
import json, sys
name = sys.argv[1]
hooks = [h for h in json.load(sys.stdin)["webhooks"] if h.get("name") == name]
if len(hooks) > 1:
    sys.exit(f"{len(hooks)} webhooks are named {name}: delete the extra ones first")
for h in hooks:
    print(h["key"], h["url"], h.get("secret", ""), sep="\t")
' "$WEBHOOK_NAME"
}

found=$(current)
if [ -z "$found" ]; then
  action=create
else
  IFS=$'\t' read -r key url current_secret <<<"$found"
  if [ "$url" = "$WEBHOOK_URL" ] && [ "$current_secret" = "$secret" ]; then
    echo "webhook $WEBHOOK_NAME -> $WEBHOOK_URL is up to date"
    exit 0
  fi
  action=update
fi

if [ "$dry_run" -eq 1 ]; then
  echo "would $action webhook $WEBHOOK_NAME -> $WEBHOOK_URL (with its secret)"
  exit 0
fi
if [ "$action" = create ]; then
  api POST api/webhooks/create "name=$WEBHOOK_NAME" "url=$WEBHOOK_URL" "secret=$secret" >/dev/null
else
  api POST api/webhooks/update "webhook=$key" "name=$WEBHOOK_NAME" "url=$WEBHOOK_URL" "secret=$secret" >/dev/null
fi

# Read it back: what the quality gate depends on must be what SonarQube now holds.
IFS=$'\t' read -r _ url current_secret <<<"$(current)"
if [ "$url" != "$WEBHOOK_URL" ] || [ "$current_secret" != "$secret" ]; then
  echo "after the $action, SonarQube does not hold the expected webhook" >&2
  exit 1
fi
echo "webhook $WEBHOOK_NAME -> $WEBHOOK_URL ${action}d"
