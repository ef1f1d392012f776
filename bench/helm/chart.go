package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// chartName is the generated chart's name.
const chartName = "bench-app"

// benchChart is the generated chart: its files by path inside the chart
// directory, and the same packed as a .tgz the way `helm package` lays it
// out (every path under chartName/).
type benchChart struct {
	files     map[string]string
	archive   []byte
	templates int
	kinds     string
}

// Parts of the chart: what a small web application's chart holds. Services
// are headless: the test cluster's Service range (10.0.0.0/24) holds only
// 256 cluster IPs, and both sides install 600 Services.
var (
	configMaps = []string{"app", "nginx", "logging", "features", "cache", "jobs", "mail", "i18n"}
	secrets    = []string{"database", "api-keys", "session", "smtp"}
	components = []string{"web", "api", "worker"}
	// componentConfig is the ConfigMap each component mounts.
	componentConfig = map[string]string{"web": "nginx", "api": "app", "worker": "jobs"}
)

// newChart generates the chart: len(configMaps) ConfigMaps,
// len(secrets) Secrets, a headless Service and a Deployment per component,
// one ServiceAccount and one Role, each its own template, with the usual
// helpers, labels and checksum annotations, so that Helm renders real
// templates rather than copying static files.
func newChart() (*benchChart, error) {
	c := &benchChart{files: map[string]string{}}
	c.files["Chart.yaml"] = `apiVersion: v2
name: ` + chartName + `
description: A small web application (Outpost's Helm benchmark)
type: application
version: 1.4.2
appVersion: "2.8.0"
`
	c.files["values.yaml"] = valuesYAML()
	c.files["templates/_helpers.tpl"] = helpersTpl
	c.files["templates/NOTES.txt"] = "{{ include \"app.fullname\" . }} {{ .Chart.AppVersion }} installed in {{ .Release.Namespace }}.\n"
	for _, n := range configMaps {
		c.files["templates/configmap-"+n+".yaml"] = configMapTpl(n)
	}
	for _, n := range secrets {
		c.files["templates/secret-"+n+".yaml"] = secretTpl(n)
	}
	for _, n := range components {
		c.files["templates/service-"+n+".yaml"] = serviceTpl(n)
		c.files["templates/deployment-"+n+".yaml"] = deploymentTpl(n)
	}
	c.files["templates/serviceaccount.yaml"] = serviceAccountTpl
	c.files["templates/role.yaml"] = roleTpl
	for p := range c.files {
		if strings.HasPrefix(p, "templates/") && strings.HasSuffix(p, ".yaml") {
			c.templates++
		}
	}
	c.kinds = fmt.Sprintf("%d ConfigMaps, %d Secrets, %d Services, %d Deployments, 1 ServiceAccount, 1 Role",
		len(configMaps), len(secrets), len(components), len(components))
	var err error
	c.archive, err = c.pack()
	return c, err
}

// pack returns the chart as a reproducible .tgz.
func (c *benchChart) pack() ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range slices.Sorted(maps.Keys(c.files)) {
		data := c.files[p]
		hdr := &tar.Header{Name: chartName + "/" + p, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pack chart: %w", err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			return nil, fmt.Errorf("pack chart: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack chart: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("pack chart: %w", err)
	}
	return buf.Bytes(), nil
}

// writeDir writes the chart's files under dir, which is created.
func (c *benchChart) writeDir(dir string) error {
	for p, data := range c.files {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
	}
	return nil
}

// bytes is the size of the chart's files.
func (c *benchChart) bytes() int {
	n := 0
	for _, data := range c.files {
		n += len(data)
	}
	return n
}

func valuesYAML() string {
	var b strings.Builder
	b.WriteString(`image:
  registry: registry.example.com
  repository: shop/app
  tag: ""
  pullPolicy: IfNotPresent

serviceAccount:
  automount: false

podSecurityContext:
  runAsNonRoot: true
  runAsUser: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault

securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]

components:
`)
	for i, n := range components {
		fmt.Fprintf(&b, `  %s:
    replicas: %d
    port: %d
    configMap: %s
    args: ["--role=%s", "--listen=:%d", "--metrics=:9090"]
    resources:
      requests: {cpu: %dm, memory: %dMi}
      limits: {cpu: "1", memory: %dMi}
`, n, 2+i%2, 8080+i, componentConfig[n], n, 8080+i, 100*(i+1), 128*(i+1), 256*(i+1))
	}
	b.WriteString("\nconfig:\n")
	for i, n := range configMaps {
		fmt.Fprintf(&b, "  %s:\n", n)
		// 10–24 settings of ~40 bytes each: a few hundred bytes to a KiB.
		for k := range 10 + 2*i {
			fmt.Fprintf(&b, "    %s.%s.setting-%02d: \"%s-%s-%d\"\n", n, words[(i+k)%len(words)], k, words[(3*i+k)%len(words)], words[(5*i+2*k)%len(words)], 100*i+k)
		}
	}
	b.WriteString("\nsecrets:\n")
	for i, n := range secrets {
		fmt.Fprintf(&b, "  %s:\n    username: %s-user\n    password: not-a-real-password-%d-%s\n    token: %s\n", n, n, i, words[i], strings.Repeat(words[i%len(words)], 4))
	}
	return b.String()
}

var words = []string{"alpha", "bravo", "cache", "delta", "edge", "fetch", "gate", "host", "index", "join", "keep", "limit", "merge", "node", "order", "pool", "queue", "route", "store", "token", "user", "value", "watch", "zone"}

const helpersTpl = `{{- define "app.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "app.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
`

func configMapTpl(name string) string {
	return strings.ReplaceAll(`apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "app.fullname" . }}-@@
  labels:
    {{- include "app.labels" . | nindent 4 }}
data:
  {{- range $k, $v := index .Values.config "@@" }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
  release: {{ .Release.Name | quote }}
`, "@@", name)
}

func secretTpl(name string) string {
	return strings.ReplaceAll(`apiVersion: v1
kind: Secret
metadata:
  name: {{ include "app.fullname" . }}-@@
  labels:
    {{- include "app.labels" . | nindent 4 }}
type: Opaque
data:
  {{- with index .Values.secrets "@@" }}
  username: {{ .username | b64enc | quote }}
  password: {{ .password | b64enc | quote }}
  token: {{ .token | b64enc | quote }}
  {{- end }}
`, "@@", name)
}

func serviceTpl(name string) string {
	return strings.ReplaceAll(`apiVersion: v1
kind: Service
metadata:
  name: {{ include "app.fullname" . }}-@@
  labels:
    {{- include "app.labels" . | nindent 4 }}
    app.kubernetes.io/component: @@
spec:
  clusterIP: None
  selector:
    {{- include "app.selector" (dict "root" . "component" "@@") | nindent 4 }}
  ports:
  - name: http
    port: {{ .Values.components.@@.port }}
    targetPort: http
  - name: metrics
    port: 9090
    targetPort: metrics
`, "@@", name)
}

func deploymentTpl(name string) string {
	return strings.ReplaceAll(`{{- $c := .Values.components.@@ -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "app.fullname" . }}-@@
  labels:
    {{- include "app.labels" . | nindent 4 }}
    app.kubernetes.io/component: @@
spec:
  replicas: {{ $c.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "app.selector" (dict "root" . "component" "@@") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "app.selector" (dict "root" . "component" "@@") | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap-app.yaml") . | sha256sum }}
        checksum/secret: {{ include (print $.Template.BasePath "/secret-database.yaml") . | sha256sum }}
    spec:
      serviceAccountName: {{ include "app.fullname" . }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      containers:
      - name: @@
        image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args:
          {{- toYaml $c.args | nindent 10 }}
        ports:
        - name: http
          containerPort: {{ $c.port }}
        - name: metrics
          containerPort: 9090
        envFrom:
        - configMapRef:
            name: {{ include "app.fullname" . }}-app
        - secretRef:
            name: {{ include "app.fullname" . }}-database
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        resources:
          {{- toYaml $c.resources | nindent 10 }}
        readinessProbe:
          httpGet:
            path: /readyz
            port: http
          periodSeconds: 5
        livenessProbe:
          httpGet:
            path: /healthz
            port: http
          initialDelaySeconds: 10
        securityContext:
          {{- toYaml .Values.securityContext | nindent 10 }}
        volumeMounts:
        - name: config
          mountPath: /etc/app
          readOnly: true
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: config
        configMap:
          name: {{ include "app.fullname" . }}-{{ $c.configMap }}
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
`, "@@", name)
}

const serviceAccountTpl = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "app.fullname" . }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
`

const roleTpl = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "app.fullname" . }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames:
  {{- range $n, $_ := .Values.config }}
  - {{ include "app.fullname" $ }}-{{ $n }}
  {{- end }}
  verbs: ["get", "watch"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
`
