{{/* Names and labels, Bitnami style. */}}
{{- define "devsecops-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "devsecops-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "devsecops-app.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "devsecops-app.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "devsecops-app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "devsecops-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: devsecops-app
{{- end -}}

{{- define "devsecops-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "devsecops-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Service helm test hooks call: on blue-green the preview Service, which reaches the
version being deployed before its promotion and follows the active version after it
(argo-rollouts rollout/service.go). */}}
{{- define "devsecops-app.testService" -}}
{{- $service := include "devsecops-app.fullname" . -}}
{{- if and .Values.rollouts.enabled (eq .Values.rollouts.strategy "blueGreen") -}}
{{- $service = printf "%s-preview" $service -}}
{{- end -}}
{{- $service -}}
{{- end -}}

{{/* The helm test pod: its own name, so that neither the workload's selector nor its policies
select it. */}}
{{- define "devsecops-app.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "devsecops-app.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end -}}

{{/* The load test Job's pod: its own name, so that neither the Service, the workload's selector
nor its policies select it. */}}
{{- define "devsecops-app.loadTestSelectorLabels" -}}
app.kubernetes.io/name: {{ include "devsecops-app.name" . }}-loadtest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: loadtest
{{- end -}}

{{- define "devsecops-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "devsecops-app.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "devsecops-app.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "devsecops-app.loadTestImage" -}}
{{- $image := .Values.loadTest.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The workload's kind and API, for the autoscalers' targets. */}}
{{- define "devsecops-app.workloadRef" -}}
{{- if .Values.rollouts.enabled -}}
apiVersion: argoproj.io/v1alpha1
kind: Rollout
{{- else -}}
apiVersion: apps/v1
kind: Deployment
{{- end }}
name: {{ include "devsecops-app.fullname" . }}
{{- end -}}

{{/* The custom metric prometheus-adapter serves for API requests per second per pod. */}}
{{- define "devsecops-app.requestRateMetric" -}}
http_requests_per_second
{{- end -}}

{{/* The Secret holding the API token. */}}
{{- define "devsecops-app.tokenSecret" -}}
{{- default (printf "%s-auth" (include "devsecops-app.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The key of the token in that Secret: the chart's own Secret names it api-token. */}}
{{- define "devsecops-app.tokenSecretKey" -}}
{{- ternary .Values.auth.existingSecretKey "api-token" (not (empty .Values.auth.existingSecret)) -}}
{{- end -}}

{{/* The CloudNativePG Cluster's name; a restore moves the release to a new one. */}}
{{- define "devsecops-app.cnpgCluster" -}}
{{- default (printf "%s-db" (include "devsecops-app.fullname" .)) .Values.database.cloudnativepg.clusterName -}}
{{- end -}}

{{/* The backup job's pods: their own name, so that neither the workload's selector, its Service
nor its policies select them. */}}
{{- define "devsecops-app.backupSelectorLabels" -}}
app.kubernetes.io/name: {{ include "devsecops-app.name" . }}-backup
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: backup
{{- end -}}

{{/* Security contexts of every pod the chart makes: Pod Security "restricted", not configurable. */}}
{{- define "devsecops-app.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "devsecops-app.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Secret and key holding the PostgreSQL URL. */}}
{{- define "devsecops-app.databaseSecret" -}}
{{- if .Values.database.cloudnativepg.enabled -}}
{{- printf "%s-app" (include "devsecops-app.cnpgCluster" .) -}}
{{- else -}}
{{- .Values.database.postgres.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "devsecops-app.databaseKey" -}}
{{- if .Values.database.cloudnativepg.enabled -}}uri{{- else -}}{{ .Values.database.postgres.urlKey }}{{- end -}}
{{- end -}}

{{/* Grace period: preStop sleep + readiness delay + drain bound + 5 s margin. */}}
{{- define "devsecops-app.terminationGracePeriod" -}}
{{- $delay := div (add .Values.shutdown.delayMs 999) 1000 -}}
{{- add .Values.shutdown.preStopSleepSeconds $delay .Values.shutdown.drainTimeoutSeconds 5 -}}
{{- end -}}

{{/* A time as the load test's command line writes it (digits, then ms, s, m or h; digits alone are
seconds), in milliseconds. The values schema admits that form only. */}}
{{- define "devsecops-app.millis" -}}
{{- $digits := regexFind "^[0-9]+" . -}}
{{- $scale := index (dict "ms" 1 "" 1000 "s" 1000 "m" 60000 "h" 3600000) (trimPrefix $digits .) -}}
{{- mul (atoi $digits) $scale -}}
{{- end -}}

{{/* The load test Job's deadline: its ramp-up and duration plus 120 s, for the pod's start (image
pull, DNS), goose's 60 s per-request timeout at the end of the run, and the reports. */}}
{{- define "devsecops-app.loadTestDeadline" -}}
{{- add (int64 .Values.loadTest.rampUp) (int64 .Values.loadTest.duration) 120 -}}
{{- end -}}

{{/* The TCP port of loadTest.host: the URL's own, else its scheme's. */}}
{{- define "devsecops-app.loadTestHostPort" -}}
{{- $host := .Values.loadTest.host -}}
{{- $port := regexFind ":[0-9]+$" (regexReplaceAll "^https?://([^/]+)/?$" $host "${1}") -}}
{{- if $port -}}
{{- trimPrefix ":" $port | atoi -}}
{{- else -}}
{{- ternary 443 80 (hasPrefix "https://" $host) -}}
{{- end -}}
{{- end -}}

{{/* The load test's values the schema cannot judge alone. The rate check: the service limits each
client address (app.rateLimitPerSecond; /health, /ready and /metrics are exempt), and the Job is
one pod, one address, also through the ingress (the forwarding header names it). A browse user
sends at most 3 API requests per 2 think times (list, next page, then get one), a sign-up user 1
per think time, whatever the latency: users x that rate at the minimum think time bounds the pod. */}}
{{- define "devsecops-app.validateLoadTest" -}}
{{- $lt := .Values.loadTest -}}
{{- $think := splitList ".." $lt.thinkTime -}}
{{- $minMs := include "devsecops-app.millis" (first $think) | atoi -}}
{{- $maxMs := include "devsecops-app.millis" (last $think) | atoi -}}
{{- if gt $minMs $maxMs -}}
{{- fail (printf "loadTest.thinkTime %q: MIN is above MAX" $lt.thinkTime) -}}
{{- end -}}
{{- if gt $maxMs 604800000 -}}
{{- fail (printf "loadTest.thinkTime %q: longer than a week, which the load test refuses" $lt.thinkTime) -}}
{{- end -}}
{{- if and (ne $lt.p95 "off") (gt (include "devsecops-app.millis" $lt.p95 | atoi) 604800000) -}}
{{- fail (printf "loadTest.p95 %q: longer than a week, which the load test refuses" $lt.p95) -}}
{{- end -}}
{{- $weights := splitList ":" $lt.weights -}}
{{- $browse := atoi (index $weights 0) -}}
{{- $signup := atoi (index $weights 1) -}}
{{- $active := 0 -}}
{{- range $weights -}}
{{- if gt (atoi .) 0 -}}
{{- $active = add1 $active -}}
{{- end -}}
{{- end -}}
{{- $users := int64 $lt.users -}}
{{- if lt $users $active -}}
{{- fail (printf "loadTest.users=%d: each of the %d scenarios weighted above 0 in loadTest.weights %q needs a user, or the run fails with a scenario that never ran" $users $active $lt.weights) -}}
{{- end -}}
{{- if $lt.host -}}
{{- $port := include "devsecops-app.loadTestHostPort" . | atoi -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "loadTest.host %q: port %d is not a TCP port" $lt.host $port) -}}
{{- end -}}
{{- end -}}
{{- $limit := int64 .Values.app.rateLimitPerSecond -}}
{{- if and (gt $limit 0) (or (gt $browse 0) (gt $signup 0)) -}}
{{- /* API requests per 1000 ms of think time, per user. */ -}}
{{- $perUser := ternary 1500 1000 (gt $browse 0) -}}
{{- if eq $minMs 0 -}}
{{- fail (printf "loadTest.thinkTime %q: with a minimum of 0 the Job's one pod sends API requests as fast as the service answers, unbounded by app.rateLimitPerSecond=%d (one client address): give it a minimum, or weights 0:0:H" $lt.thinkTime $limit) -}}
{{- end -}}
{{- if gt (mul $users $perUser) (mul $limit $minMs) -}}
{{- fail (printf "loadTest: %d users at a minimum think time of %d ms may send up to %d API requests per second from the Job's one pod (%s), over app.rateLimitPerSecond=%d for one client address: the excess gets 429 and counts as errors. Raise the minimum of loadTest.thinkTime, lower loadTest.users, or raise app.rateLimitPerSecond" $users $minMs (div (add (mul $users $perUser) $minMs -1) $minMs) (ternary "a browse user: 3 per 2 think times" "a sign-up user: 1 per think time" (gt $browse 0)) $limit) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Refuse value combinations that cannot work, with a message naming the values. */}}
{{- define "devsecops-app.validate" -}}
{{- if eq (int64 .Values.app.port) (int64 .Values.app.metricsPort) -}}
{{- fail "app.port and app.metricsPort must differ: the metrics port is never routed by the ingress" -}}
{{- end -}}
{{- if eq .Values.database.type "sqlite" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- fail "database.type=sqlite supports one replica only: set replicaCount=1 and autoscaling.enabled=false, or use database.type=postgres" -}}
{{- end -}}
{{- if .Values.rollouts.enabled -}}
{{- fail "rollouts need two versions running side by side: use database.type=postgres" -}}
{{- end -}}
{{- if .Values.database.cloudnativepg.enabled -}}
{{- fail "database.cloudnativepg.enabled needs database.type=postgres" -}}
{{- end -}}
{{- if and .Values.database.sqlite.backup.enabled (not .Values.database.sqlite.persistence.enabled) -}}
{{- fail "database.sqlite.backup.enabled needs database.sqlite.persistence.enabled: the backup job reads the database from the service's volume, which an emptyDir is not" -}}
{{- end -}}
{{- else -}}
{{- if .Values.database.sqlite.backup.enabled -}}
{{- fail "database.sqlite.backup is for SQLite; with PostgreSQL use database.cloudnativepg.backup or the provider's backups (pg_dump, docs/kubernetes.md)" -}}
{{- end -}}
{{- if and (not .Values.database.cloudnativepg.enabled) (not .Values.database.postgres.existingSecret) -}}
{{- fail "database.type=postgres needs database.postgres.existingSecret or database.cloudnativepg.enabled=true" -}}
{{- end -}}
{{- end -}}
{{- $cnpg := .Values.database.cloudnativepg -}}
{{- if and (or $cnpg.backup.enabled $cnpg.recovery.enabled) (not $cnpg.enabled) -}}
{{- fail "database.cloudnativepg.backup and .recovery need database.cloudnativepg.enabled" -}}
{{- end -}}
{{- if and $cnpg.backup.enabled (eq $cnpg.backup.method "objectStore") (not $cnpg.backup.objectStore.destinationPath) -}}
{{- fail "database.cloudnativepg.backup.method=objectStore needs database.cloudnativepg.backup.objectStore.destinationPath" -}}
{{- end -}}
{{- if and $cnpg.backup.enabled (eq $cnpg.backup.method "volumeSnapshot") (not $cnpg.backup.volumeSnapshot.className) -}}
{{- fail "database.cloudnativepg.backup.method=volumeSnapshot needs database.cloudnativepg.backup.volumeSnapshot.className" -}}
{{- end -}}
{{- if $cnpg.recovery.enabled -}}
{{- if eq (not $cnpg.recovery.backupName) (not $cnpg.recovery.sourceCluster) -}}
{{- fail "database.cloudnativepg.recovery needs exactly one of backupName (a volume snapshot Backup) or sourceCluster (the old cluster in the object store)" -}}
{{- end -}}
{{- if and $cnpg.recovery.sourceCluster (not $cnpg.backup.objectStore.destinationPath) -}}
{{- fail "database.cloudnativepg.recovery.sourceCluster reads the object store of database.cloudnativepg.backup.objectStore: set its destinationPath" -}}
{{- end -}}
{{- if and $cnpg.recovery.targetTime (not $cnpg.recovery.sourceCluster) -}}
{{- fail "database.cloudnativepg.recovery.targetTime needs the WAL archive of an object store: set sourceCluster" -}}
{{- end -}}
{{- if eq (include "devsecops-app.cnpgCluster" .) $cnpg.recovery.sourceCluster -}}
{{- fail "database.cloudnativepg.recovery restores into a new cluster: set database.cloudnativepg.clusterName to a name other than the source's" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.autoscaling.requestRate.enabled (not .Values.autoscaling.enabled) -}}
{{- fail "autoscaling.requestRate.enabled is a metric of the HorizontalPodAutoscaler: set autoscaling.enabled" -}}
{{- end -}}
{{- if .Values.loadTest.enabled -}}
{{- include "devsecops-app.validateLoadTest" . -}}
{{- end -}}
{{- end -}}

{{/* The pod template shared by the Deployment and the Rollout. */}}
{{- define "devsecops-app.podTemplate" -}}
metadata:
  labels:
    {{- include "devsecops-app.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "devsecops-app.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "devsecops-app.terminationGracePeriod" . }}
  securityContext:
    {{- include "devsecops-app.podSecurityContext" . | nindent 4 }}
  {{- if .Values.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ .Values.topologySpread.maxSkew | int64 }}
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "devsecops-app.selectorLabels" . | nindent 10 }}
    - maxSkew: {{ .Values.topologySpread.maxSkew | int64 }}
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "devsecops-app.selectorLabels" . | nindent 10 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: devsecops-app
      image: {{ include "devsecops-app.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      ports:
        - name: http
          containerPort: {{ .Values.app.port | int64 }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.app.metricsPort | int64 }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "devsecops-app.fullname" . }}
      env:
        - name: API_TOKEN_FILE
          value: /var/run/secrets/devsecops-app/api-token
        {{- if eq .Values.database.type "postgres" }}
        - name: DATABASE_URL_FILE
          value: /var/run/secrets/devsecops-app-database/url
        {{- end }}
        {{- with .Values.app.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext:
        {{- include "devsecops-app.containerSecurityContext" . | nindent 8 }}
      startupProbe:
        httpGet: {path: /health, port: http}
        {{- toYaml .Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet: {path: /health, port: http}
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /ready, port: http}
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ .Values.shutdown.preStopSleepSeconds | int64 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: api-token
          mountPath: /var/run/secrets/devsecops-app
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.database.type "postgres" }}
        - name: database-url
          mountPath: /var/run/secrets/devsecops-app-database
          readOnly: true
        {{- end }}
        {{- if eq .Values.database.type "sqlite" }}
        - name: data
          mountPath: {{ dir .Values.database.sqlite.path }}
        {{- end }}
  volumes:
    - name: api-token
      secret:
        secretName: {{ include "devsecops-app.tokenSecret" . }}
        defaultMode: 0440
        items:
          - key: {{ include "devsecops-app.tokenSecretKey" . }}
            path: api-token
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- if eq .Values.database.type "postgres" }}
    - name: database-url
      secret:
        secretName: {{ include "devsecops-app.databaseSecret" . }}
        defaultMode: 0440
        items:
          - key: {{ include "devsecops-app.databaseKey" . }}
            path: url
    {{- end }}
    {{- if eq .Values.database.type "sqlite" }}
    - name: data
      {{- if .Values.database.sqlite.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "devsecops-app.fullname" . }}-data
      {{- else }}
      emptyDir:
        sizeLimit: 256Mi
      {{- end }}
    {{- end }}
{{- end -}}

{{/* The token for the chart-made Secret: auth.token, else the one already in the cluster (kept across
upgrades), else a new random one (48 characters, accepted by production mode). */}}
{{- define "devsecops-app.token" -}}
{{- if .Values.auth.token -}}
{{- .Values.auth.token -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "devsecops-app.tokenSecret" .) -}}
{{- if and $existing $existing.data (index $existing.data "api-token") -}}
{{- index $existing.data "api-token" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The load test's hooks (its Job and NetworkPolicy share the name, so one `helm test --filter
name=...` selects both): named after the release, not fullname, so that the pipelines' filters
(scripts/deploy-lib.sh LOAD_TEST_HOOK, "<release>-loadtest") hold whatever fullnameOverride says.
*/}}
{{- define "devsecops-app.loadTestHook" -}}
{{- printf "%s-loadtest" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
