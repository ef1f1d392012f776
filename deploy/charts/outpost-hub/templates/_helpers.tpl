{{/* The chart name, or nameOverride. */}}
{{- define "outpost-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: fullnameOverride, or <release>-<chart>. */}}
{{- define "outpost-hub.fullname" -}}
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

{{- define "outpost-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outpost-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outpost-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "outpost-hub.labels" -}}
helm.sh/chart: {{ include "outpost-hub.chart" . }}
{{ include "outpost-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: hub
{{- end }}

{{- define "outpost-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outpost-hub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "outpost-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether the database is PostgreSQL (else SQLite). */}}
{{- define "outpost-hub.postgres" -}}
{{- if eq .Values.database.mode "postgres" }}true{{ end }}
{{- end }}

{{/* Replicas: the value, or 1 with SQLite and 2 with PostgreSQL. */}}
{{- define "outpost-hub.replicas" -}}
{{- if not (kindIs "invalid" .Values.replicas) }}
{{- .Values.replicas }}
{{- else if include "outpost-hub.postgres" . }}
{{- 2 }}
{{- else }}
{{- 1 }}
{{- end }}
{{- end }}

{{/* The Secret holding the hub's own TLS certificate and key. */}}
{{- define "outpost-hub.tlsSecret" -}}
{{- default (printf "%s-tls" (include "outpost-hub.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/* Where the SQLite file lives in the pod (the PVC's mount). */}}
{{- define "outpost-hub.dataDir" -}}/var/lib/outpost-hub{{- end }}

{{/*
The --db argument. With PostgreSQL it names the environment variable the
kubelet fills from the Secret, so the connection string is never part of
a manifest.
*/}}
{{- define "outpost-hub.dbArg" -}}
{{- if include "outpost-hub.postgres" . -}}
--db=$(OUTPOST_HUB_DB)
{{- else -}}
--db={{ include "outpost-hub.dataDir" . }}/outpost-hub.db
{{- end }}
{{- end }}

{{/* The env both containers need. */}}
{{- define "outpost-hub.env" -}}
{{- if include "outpost-hub.postgres" . }}
- name: OUTPOST_HUB_DB
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.postgres.existingSecret }}
      key: {{ .Values.database.postgres.secretKey }}
{{- end }}
{{- end }}

{{/* The mounts both containers share. */}}
{{- define "outpost-hub.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if not (include "outpost-hub.postgres" .) }}
- name: data
  mountPath: {{ include "outpost-hub.dataDir" . }}
{{- end }}
{{- end }}

{{/* The in-cluster DNS names of the Service. */}}
{{- define "outpost-hub.serviceDNSNames" -}}
{{- $svc := include "outpost-hub.fullname" . -}}
- {{ $svc }}
- {{ $svc }}.{{ .Release.Namespace }}
- {{ $svc }}.{{ .Release.Namespace }}.svc
- {{ $svc }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}
