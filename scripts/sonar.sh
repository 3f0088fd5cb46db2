#!/usr/bin/env bash
# SonarQube analysis of the repository as sonar-project.properties describes it, importing what the
# earlier steps wrote: the devsecops SARIF without accepted findings (reports/devsecops-open.sarif,
# from `devsecops scan`) and the LCOV coverage (reports/coverage/lcov.info, from scripts/coverage.sh).
# The Rust analyzer runs clippy itself, so cargo and clippy must be on PATH.
#
#   SONAR_HOST_URL=http://sonarqube.local SONAR_TOKEN=... scripts/sonar.sh [--dry-run]
#
# In Jenkins, withSonarQubeEnv('sonarqube') sets SONAR_HOST_URL and SONAR_AUTH_TOKEN. The token is
# passed to the scanner through the environment, never on its command line. sonar-scanner comes from
# PATH or SONAR_SCANNER_HOME. --dry-run checks the inputs and prints the command.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; elif [ $# -gt 0 ]; then echo "unknown option: $1" >&2; exit 2; fi

# Every report the properties file names must exist: a missing one would silently drop its data.
status=0
while IFS= read -r report; do
  if [ ! -f "$report" ]; then echo "missing report: $report (run the step that writes it first)" >&2; status=1; fi
done < <(sed -n 's/^sonar\.\(sarifReportPaths\|rust\.lcov\.reportPaths\)=//p' sonar-project.properties | tr ',' '\n')
[ "$status" -eq 0 ] || exit 1

scanner=sonar-scanner
if [ -n "${SONAR_SCANNER_HOME:-}" ]; then scanner="$SONAR_SCANNER_HOME/bin/sonar-scanner"; fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cmd=("$scanner" "-Dsonar.projectVersion=$version" "-Dsonar.scm.revision=$revision")

if [ "$dry_run" -eq 1 ]; then
  printf 'would run:'; printf ' %q' "${cmd[@]}"; printf '\n'
  exit 0
fi
: "${SONAR_HOST_URL:?SONAR_HOST_URL must name the SonarQube server}"
export SONAR_TOKEN="${SONAR_TOKEN:-${SONAR_AUTH_TOKEN:-}}"
[ -n "$SONAR_TOKEN" ] || { echo "SONAR_TOKEN (or SONAR_AUTH_TOKEN) must hold an analysis token" >&2; exit 2; }
command -v "$scanner" >/dev/null 2>&1 || { echo "$scanner not found: install the SonarScanner CLI" >&2; exit 2; }
"${cmd[@]}"
