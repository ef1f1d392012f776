package manifests_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

var userSeq atomic.Int64

// setup is an agent identity with its own namespace and one target
// namespace it may deploy into.
type setup struct {
	cfg     *rest.Config
	agentNS string
	target  string
}

// leastPrivilege provisions an agent bound only by namespace Roles.
func leastPrivilege(t *testing.T) setup {
	t.Helper()
	agentNS := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: fmt.Sprintf("agent-%d", userSeq.Add(1)), Namespace: agentNS, Targets: []string{target}})
	return setup{cfg: cfg, agentNS: agentNS, target: target}
}

// admin is an agent acting as cluster administrator, for cluster-scoped
// objects.
func admin(t *testing.T) setup {
	t.Helper()
	return setup{cfg: rest.CopyConfig(env.Config), agentNS: env.Namespace(t, "agent"), target: env.Namespace(t, "app")}
}

func (s setup) executor(t testing.TB, mutate ...func(*manifests.Options)) *manifests.Executor {
	t.Helper()
	opts := manifests.Options{Config: rest.CopyConfig(s.cfg), AgentNamespace: s.agentNS}
	for _, m := range mutate {
		m(&opts)
	}
	ex, err := manifests.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func task(t testing.TB, id string, attempt int64, spec taskspec.Manifests) executor.Task {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return executor.Task{ID: id, Kind: taskspec.KindManifests, Spec: raw, Attempt: attempt}
}

func execute(t *testing.T, ex *manifests.Executor, tk executor.Task) manifests.Result {
	t.Helper()
	raw, err := ex.Execute(t.Context(), tk)
	if err != nil {
		t.Fatalf("task %s attempt %d: %v", tk.ID, tk.Attempt, err)
	}
	var res manifests.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return res
}

// outcomes summarises a result as "Kind/name" → "outcome" or
// "outcome: reason", with the namespace left out so results of twin runs
// in different namespaces compare equal.
func outcomes(res manifests.Result) map[string]string {
	out := map[string]string{}
	for _, o := range res.Objects {
		v := o.Outcome
		if o.Reason != "" {
			v += ": " + o.Reason
		}
		out[o.Kind+"/"+o.Name] = v
	}
	return out
}

func wantOutcomes(t *testing.T, res manifests.Result, want map[string]string) {
	t.Helper()
	got := outcomes(res)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes:\n got  %v\n want %v", got, want)
	}
}

func configMap(name, ns string, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		b.WriteString("data:\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %q\n", k, data[k])
		}
	}
	return b.String()
}

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.0
`

func join(docs ...string) string { return strings.Join(docs, "---\n") }

// exists reports whether a ConfigMap exists, as the administrator sees it.
func configMapExists(t *testing.T, ns, name string) bool {
	t.Helper()
	_, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func inventoryExists(t *testing.T, s setup, release string) bool {
	t.Helper()
	_, err := env.Client.CoreV1().Secrets(s.agentNS).Get(context.Background(), "outpost-release-"+release, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// wantTerminal fails unless err is terminal, wraps sentinel and says every
// one of the phrases.
func wantTerminal(t *testing.T, err error, sentinel error, phrases ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("task succeeded, want it rejected")
	}
	if !executor.IsTerminal(err) || !errors.Is(err, sentinel) {
		t.Fatalf("error %v: want a terminal error wrapping %v", err, sentinel)
	}
	for _, p := range phrases {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}

// hook is a RoundTripper that lets a test see, delay or fail requests.
type hook struct {
	rt     http.RoundTripper
	before func(req *http.Request) error
}

func (h *hook) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := h.before(req); err != nil {
		return nil, err
	}
	return h.rt.RoundTrip(req)
}

func withHook(before func(req *http.Request) error) func(*manifests.Options) {
	return func(o *manifests.Options) {
		o.Config.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &hook{rt: rt, before: before} }
	}
}

// realApply reports whether req is a server-side apply that is no dry run.
func realApply(req *http.Request) bool {
	return req.Method == http.MethodPatch && !strings.Contains(req.URL.RawQuery, "dryRun")
}

// fakeFetcher serves artifacts from memory and, like the agent's, fails
// Close when the content does not hash to the digest.
type fakeFetcher map[string][]byte

func (f fakeFetcher) Fetch(_ context.Context, digest string) (io.ReadCloser, error) {
	data, ok := f[digest]
	if !ok {
		return nil, fmt.Errorf("artifact %s not found", digest)
	}
	return &verifying{r: bytes.NewReader(data), digest: digest, h: sha256.New()}, nil
}

type verifying struct {
	r      io.Reader
	digest string
	h      interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	return n, err
}

func (v *verifying) Close() error {
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.digest {
		return fmt.Errorf("artifact %s hashes to %s", v.digest, got)
	}
	return nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
