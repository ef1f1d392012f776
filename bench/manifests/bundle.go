package main

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// kinds is the mix a generated bundle cycles through: what an application
// release usually ships, without Secrets (their content would be sealed
// values or vault references, a different task kind). Each group of
// len(kinds) consecutive objects is one "app".
var kinds = []string{"ConfigMap", "ServiceAccount", "Service", "Deployment", "Role", "RoleBinding"}

// bundle is a generated set of objects for one namespace, as the YAML files
// kubectl is given and as one multi-document stream for the agent.
type bundle struct {
	namespace string
	// files maps a file name (one per app) to its YAML documents.
	files map[string][]byte
	// objects is the number of objects.
	objects int
	// bytes is the size of all documents together.
	bytes int
}

// generate builds n objects in namespace ns. The content depends only on
// n, seed and ns, so every run and both tools apply the same bundle.
// ConfigMaps carry 2–8 KiB of configuration and Deployments a realistic pod
// template, so an average object is ~1.5 KiB: sizes where the cost of
// sending and diffing objects shows, not just the round trips.
func generate(ns, prefix string, n int, seed uint64) *bundle {
	rng := rand.New(rand.NewPCG(seed, 0x6f7574706f7374)) //nolint:gosec // deterministic content, not a secret
	b := &bundle{namespace: ns, files: map[string][]byte{}, objects: n}
	var file bytes.Buffer
	flush := func(app int) {
		if file.Len() == 0 {
			return
		}
		b.files[fmt.Sprintf("%s-%04d.yaml", prefix, app)] = bytes.Clone(file.Bytes())
		b.bytes += file.Len()
		file.Reset()
	}
	for i := range n {
		app := i / len(kinds)
		if i > 0 && i%len(kinds) == 0 {
			flush(app - 1)
		}
		name := fmt.Sprintf("%s-%04d", prefix, app)
		if file.Len() > 0 {
			file.WriteString("---\n")
		}
		switch kinds[i%len(kinds)] {
		case "ConfigMap":
			writeConfigMap(&file, ns, name, rng)
		case "ServiceAccount":
			writeServiceAccount(&file, ns, name)
		case "Service":
			writeService(&file, ns, name)
		case "Deployment":
			writeDeployment(&file, ns, name, app, rng)
		case "Role":
			writeRole(&file, ns, name)
		case "RoleBinding":
			writeRoleBinding(&file, ns, name)
		}
	}
	flush((n - 1) / len(kinds))
	return b
}

// stream returns all documents as one multi-document YAML stream, files in
// name order.
func (b *bundle) stream() []byte {
	var out bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(b.files)) {
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(b.files[name])
	}
	return out.Bytes()
}

// writeDir writes the files into dir, which must exist.
func (b *bundle) writeDir(dir string) error {
	for name, data := range b.files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
	}
	return nil
}

func labels(w *bytes.Buffer, indent, name string) {
	fmt.Fprintf(w, "%sapp.kubernetes.io/name: %s\n%sapp.kubernetes.io/part-of: bench\n", indent, name, indent)
}

func writeConfigMap(w *bytes.Buffer, ns, name string, rng *rand.Rand) {
	fmt.Fprintf(w, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-config\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	w.WriteString("data:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: search,export,audit\n  app.properties: |\n")
	// 2–8 KiB of key=value lines, like a real application's settings.
	size := 2048 + rng.IntN(6*1024)
	for n := 0; n < size; {
		line := fmt.Sprintf("    %s.%s.%s=%s\n", word(rng), word(rng), word(rng), strings.Repeat(word(rng), 1+rng.IntN(4)))
		w.WriteString(line)
		n += len(line)
	}
}

func writeServiceAccount(w *bytes.Buffer, ns, name string) {
	fmt.Fprintf(w, "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	w.WriteString("automountServiceAccountToken: false\n")
}

func writeService(w *bytes.Buffer, ns, name string) {
	fmt.Fprintf(w, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	fmt.Fprintf(w, `spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: %s
  ports:
  - name: http
    port: 80
    targetPort: http
    protocol: TCP
  - name: metrics
    port: 9090
    targetPort: metrics
    protocol: TCP
`, name)
}

func writeDeployment(w *bytes.Buffer, ns, name string, app int, rng *rand.Rand) {
	fmt.Fprintf(w, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	fmt.Fprintf(w, `spec:
  replicas: %d
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: %s
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: %s
        app.kubernetes.io/part-of: bench
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
    spec:
      serviceAccountName: %s
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: app
        image: registry.example.com/bench/app-%d:1.%d.%d
        imagePullPolicy: IfNotPresent
        args: ["--config=/etc/app/app.properties", "--listen=:8080", "--metrics=:9090"]
        ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: GOMAXPROCS
          valueFrom:
            resourceFieldRef:
              resource: limits.cpu
        envFrom:
        - configMapRef:
            name: %s-config
        resources:
          requests:
            cpu: 100m
            memory: 128Mi
          limits:
            cpu: "1"
            memory: 256Mi
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
          periodSeconds: 10
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: ["ALL"]
        volumeMounts:
        - name: config
          mountPath: /etc/app
          readOnly: true
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: config
        configMap:
          name: %s-config
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
`, 1+rng.IntN(3), name, name, name, app%50, rng.IntN(20), rng.IntN(10), name, name)
}

func writeRole(w *bytes.Buffer, ns, name string) {
	fmt.Fprintf(w, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	fmt.Fprintf(w, `rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["%s-config"]
  verbs: ["get", "watch"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
`, name)
}

func writeRoleBinding(w *bytes.Buffer, ns, name string) {
	fmt.Fprintf(w, "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n", name, ns)
	labels(w, "    ", name)
	fmt.Fprintf(w, `roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: %s
subjects:
- kind: ServiceAccount
  name: %s
  namespace: %s
`, name, name, ns)
}

var words = []string{"alpha", "bravo", "cache", "delta", "edge", "fetch", "gate", "host", "index", "join", "keep", "limit", "merge", "node", "order", "pool", "queue", "route", "store", "token", "user", "value", "watch", "zone"}

func word(rng *rand.Rand) string { return words[rng.IntN(len(words))] }
