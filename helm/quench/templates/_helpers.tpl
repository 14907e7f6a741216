{{/*
The worker's HTTP port: /metrics, /healthz and /readyz. The chart writes it into the config
(http.port), so the probes, the Service and the NetworkPolicy always agree with the worker.
*/}}
{{- define "quench.httpPort" -}}9464{{- end -}}

{{/* Where the worker config and the referenced Secrets are mounted. */}}
{{- define "quench.configDir" -}}/etc/quench{{- end -}}
{{- define "quench.secretsDir" -}}/var/run/secrets/quench{{- end -}}

{{- define "quench.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, at most 63 characters (DNS label). When the release name already holds
the chart name it is used as is.
*/}}
{{- define "quench.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quench.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable), so
never the version, the chart or anything from values.
*/}}
{{- define "quench.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "quench.labels" -}}
helm.sh/chart: {{ include "quench.chart" . }}
{{ include "quench.selectorLabels" . }}
app.kubernetes.io/version: {{ include "quench.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: quench
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "quench.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "quench.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An int-or-percent value: "25%" stays a string, 1 prints as 1 (not 1e+00). */}}
{{- define "quench.intOrPercent" -}}
{{- if kindIs "string" . -}}{{ quote . }}{{- else -}}{{ int64 . }}{{- end -}}
{{- end -}}

{{- define "quench.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "quench.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "quench.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/*
The worker configuration (schemas/config.schema.json) as JSON: .Values.config plus what the chart
owns (http, shutdown.budget_ms) and, with workload identity, azure.credential "workload" unless set.
*/}}
{{- define "quench.config" -}}
{{- $cfg := deepCopy (default (dict) .Values.config) -}}
{{- $_ := set $cfg "http" (dict "address" "0.0.0.0" "port" (int (include "quench.httpPort" .))) -}}
{{- $_ := set $cfg "shutdown" (dict "budget_ms" (mul (int .Values.shutdownBudgetSeconds) 1000)) -}}
{{- if .Values.workloadIdentity.enabled -}}
{{- $azure := default (dict) (get $cfg "azure") -}}
{{- if not (get $azure "credential") -}}
{{- $_ := set $azure "credential" "workload" -}}
{{- end -}}
{{- $_ := set $cfg "azure" $azure -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* Values that render nothing but must hold: called from the Deployment. */}}
{{- define "quench.validate" -}}
{{- $budget := int .Values.shutdownBudgetSeconds -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if lt $grace (add $budget 5) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least shutdownBudgetSeconds (%d) + 5, so the worker can flush, commit and leave the group before it is killed" $grace $budget) -}}
{{- end -}}
{{- if and .Values.autoscaling.hpa.enabled .Values.autoscaling.keda.enabled -}}
{{- fail "autoscaling.hpa.enabled and autoscaling.keda.enabled are both true: choose one (KEDA creates its own HPA, and two HPAs on one Deployment fight)" -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled .Values.serviceAccount.create (not .Values.workloadIdentity.clientId) -}}
{{- fail "workloadIdentity.enabled needs workloadIdentity.clientId (the identity's client id) for the ServiceAccount annotation azure.workload.identity/client-id" -}}
{{- end -}}
{{- $config := default (dict) .Values.config -}}
{{- if not (index (default (dict) (get $config "kafka")) "bootstrap.servers") -}}
{{- fail "config.kafka[\"bootstrap.servers\"] is required" -}}
{{- end -}}
{{- with .Values.autoscaling.hpa -}}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) -}}
{{- fail (printf "autoscaling.hpa.minReplicas (%d) is above maxReplicas (%d)" (int .minReplicas) (int .maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- with .Values.autoscaling.keda -}}
{{- if and .enabled (gt (int .minReplicaCount) (int .maxReplicaCount)) -}}
{{- fail (printf "autoscaling.keda.minReplicaCount (%d) is above maxReplicaCount (%d)" (int .minReplicaCount) (int .maxReplicaCount)) -}}
{{- end -}}
{{- end -}}
{{- /*
Every secret file the config names is a key of a mounted existingSecrets entry. ca_file (not a
secret) may also name a file of the image, e.g. /etc/ssl/certs/ca-certificates.crt.
*/ -}}
{{- $files := list -}}
{{- range $key, $path := (default (dict) (get $config "kafka_secret_files")) -}}
{{- $files = append $files (list (printf "kafka_secret_files.%s" $key) $path true) -}}
{{- end -}}
{{- $azure := default (dict) (get $config "azure") -}}
{{- range $key := list "client_secret_file" "certificate_file" "private_key_file" "ca_file" -}}
{{- with (get $azure $key) -}}
{{- $files = append $files (list (printf "azure.%s" $key) . (ne $key "ca_file")) -}}
{{- end -}}
{{- end -}}
{{- $dir := printf "%s/" (include "quench.secretsDir" .) -}}
{{- range $files -}}
{{- $what := index . 0 -}}
{{- $path := index . 1 -}}
{{- if and (index . 2) (not (hasPrefix $dir $path)) -}}
{{- fail (printf "config %s (%s) must be a file of a mounted Secret: %s<existingSecrets name>/<key>" $what $path $dir) -}}
{{- else if hasPrefix $dir $path -}}
{{- $parts := splitList "/" (trimPrefix $dir $path) -}}
{{- $secret := get $.Values.existingSecrets (index $parts 0) -}}
{{- if or (ne (len $parts) 2) (not $secret) -}}
{{- fail (printf "config %s (%s) is not a file of a mounted Secret: add existingSecrets.%s and use %s<name>/<key>" $what $path (index $parts 0) $dir) -}}
{{- else if and $secret.keys (not (has (index $parts 1) $secret.keys)) -}}
{{- fail (printf "config %s (%s): key %s is not in existingSecrets.%s.keys" $what $path (index $parts 1) (index $parts 0)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
