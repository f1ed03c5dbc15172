{{/* Chart name, overridable. */}}
{{- define "tokend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name alone when it already contains the chart's. */}}
{{- define "tokend.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tokend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tokend.labels" -}}
helm.sh/chart: {{ include "tokend.chart" . }}
{{ include "tokend.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tokend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tokend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tokend.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the database URL and the KEK: the user's, or the chart's. */}}
{{- define "tokend.secretName" -}}
{{- default (include "tokend.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
The chart's Secret data. Rendered twice: into the release's Secret (read by the pods) and into a
hook Secret that exists only while the migrations hook runs (see migrations-secret.yaml).
*/}}
{{- define "tokend.secretData" -}}
{{- $url := required "database.url is required (postgres://user:password@host:5432/db), or set existingSecret" .Values.database.url }}
{{- if not (regexMatch "^postgres(ql)?://" $url) }}
{{- fail "database.url must be a postgres:// URL: the replicas share one Postgres database" }}
{{- end -}}
{{ .Values.secretKeys.databaseUrl }}: {{ $url | b64enc | quote }}
{{ .Values.secretKeys.kek }}: {{ required "kek is required (openssl rand -base64 32), or set existingSecret" .Values.kek | b64enc | quote }}
{{- end }}

{{/*
Environment shared by the server and the migrations Job: the database URL and the KEK from
`$secret`, and logging. tokend validates its whole configuration before any command, so
`tokend migrate` needs the KEK too.
*/}}
{{- define "tokend.secretEnv" -}}
{{- $ctx := index . 0 }}
{{- $secret := index . 1 -}}
- name: TOKEND__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $ctx.Values.secretKeys.databaseUrl }}
- name: TOKEND__KEYS__KEK
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $ctx.Values.secretKeys.kek }}
- name: TOKEND__LOG__FORMAT
  value: {{ $ctx.Values.log.format | quote }}
- name: RUST_LOG
  value: {{ $ctx.Values.log.level | quote }}
{{- end }}

{{/* Where the TLS Secret is mounted. */}}
{{- define "tokend.tlsDir" -}}/etc/tokend/tls{{- end }}

{{/* tokend's TOML config as a dict: `config:` with the `federation:` issuers merged in. */}}
{{- define "tokend.config" -}}
{{- $config := deepCopy (default (dict) .Values.config) }}
{{- if .Values.federation.issuers }}
{{- $_ := set $config "federation" (dict "issuers" .Values.federation.issuers) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
