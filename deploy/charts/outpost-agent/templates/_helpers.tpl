{{/* The chart's name. */}}
{{- define "outpost-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name, the prefix of every object. */}}
{{- define "outpost-agent.fullname" -}}
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

{{- define "outpost-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outpost-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "outpost-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "outpost-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: outpost
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "outpost-agent.serviceAccountName" -}}
{{- default (include "outpost-agent.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The image reference: a digest wins over a tag. */}}
{{- define "outpost-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the agent deploys into; empty means its own. */}}
{{- define "outpost-agent.targetNamespaces" -}}
{{- if .Values.rbac.targetNamespaces -}}
{{- toJson (uniq .Values.rbac.targetNamespaces) -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the bootstrap token and its key, or "" for none. */}}
{{- define "outpost-agent.tokenSecret" -}}
{{- if .Values.bootstrapToken.existingSecret -}}
{{- .Values.bootstrapToken.existingSecret -}}
{{- else if .Values.bootstrapToken.value -}}
{{- printf "%s-bootstrap-token" (include "outpost-agent.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "outpost-agent.tokenKey" -}}
{{- if .Values.bootstrapToken.existingSecret -}}
{{- .Values.bootstrapToken.existingSecretKey -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding the hub's CA bundle under ca.crt, or "". */}}
{{- define "outpost-agent.caConfigMap" -}}
{{- if .Values.hub.existingCaConfigMap -}}
{{- .Values.hub.existingCaConfigMap -}}
{{- else if .Values.hub.caBundle -}}
{{- printf "%s-hub-ca" (include "outpost-agent.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Checks what the schema cannot say clearly. */}}
{{- define "outpost-agent.validate" -}}
{{- if and .Values.bootstrapToken.value .Values.bootstrapToken.existingSecret -}}
{{- fail "bootstrapToken: set either bootstrapToken.value or bootstrapToken.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.hub.caBundle .Values.hub.existingCaConfigMap -}}
{{- fail "hub: set either hub.caBundle or hub.existingCaConfigMap, not both" -}}
{{- end -}}
{{- end -}}
