package reconcile_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/keylock"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

var env *kubetest.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// Fuzzing (each worker runs TestMain too) needs no cluster.
		os.Exit(m.Run())
	}
	kubetest.Main(m, &env)
}

// deadline bounds every wait: generous for a busy 2-core machine, while
// the reconciler itself reacts within about a second.
const deadline = 20 * time.Second

var agentSeq atomic.Int64

// setup is a least-privilege agent identity, its namespace and the
// namespace it deploys into.
type setup struct {
	cfg     *rest.Config
	agentNS string
	target  string
	// writes records the mutating requests the reconciler sends.
	writes *requestLog
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	agentNS := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: fmt.Sprintf("reconcile-agent-%d", agentSeq.Add(1)), Namespace: agentNS, Targets: []string{target}})
	return &setup{cfg: cfg, agentNS: agentNS, target: target, writes: &requestLog{}}
}

// requestLog records "METHOD path?query" of every request but reads.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			l.mu.Lock()
			l.reqs = append(l.reqs, req.Method+" "+req.URL.RequestURI())
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (l *requestLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs[n:])
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// apply runs a manifests task of release name at revision with the
// project's executor, as the agent would.
func (s *setup) apply(t *testing.T, spec taskspec.Manifests) {
	t.Helper()
	ex, err := manifests.New(manifests.Options{Config: rest.CopyConfig(s.cfg), AgentNamespace: s.agentNS})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Execute(t.Context(), executor.Task{ID: fmt.Sprintf("task-%s-%d", spec.Release, spec.Revision), Kind: taskspec.KindManifests, Spec: raw, Attempt: 1}); err != nil {
		t.Fatalf("apply %s revision %d: %v", spec.Release, spec.Revision, err)
	}
}

// running is a started Reconciler and what it reported.
type running struct {
	*reconcile.Reconciler
	reports *fakeReporter
	refresh *refreshes
}

// start creates a Reconciler for s with rels as the desired set, starts it
// and stops it when the test ends.
func (s *setup) start(t *testing.T, rels []reconcile.Release, mutate ...func(*reconcile.Options)) *running {
	t.Helper()
	cfg := rest.CopyConfig(s.cfg)
	cfg.Wrap(s.writes.wrap)
	rep := &fakeReporter{}
	ref := &refreshes{}
	opts := reconcile.Options{Config: cfg, AgentNamespace: s.agentNS, Reporter: rep, NeedRefresh: ref.add, Lock: &keylock.Locker{}}
	for _, m := range mutate {
		m(&opts)
	}
	r, err := reconcile.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.SetDesired(rels)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(deadline):
			t.Error("Start did not return after its context ended")
		}
	})
	select {
	case <-r.Synced():
	case <-time.After(deadline):
		t.Fatal("no first full sync")
	}
	return &running{Reconciler: r, reports: rep, refresh: ref}
}

// fakeReporter records reports; failing, when set, makes it fail.
type fakeReporter struct {
	mu      sync.Mutex
	got     []reconcile.Drift
	failing bool
	calls   int
}

func (f *fakeReporter) ReportDrift(_ context.Context, d reconcile.Drift) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failing {
		return fmt.Errorf("hub unreachable")
	}
	f.got = append(f.got, d)
	return nil
}

func (f *fakeReporter) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

func (f *fakeReporter) all() []reconcile.Drift {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// wait returns the first report after the first skip ones that match.
func (f *fakeReporter) wait(t *testing.T, what string, match func(reconcile.Drift) bool) reconcile.Drift {
	t.Helper()
	var found reconcile.Drift
	waitFor(t, what, func() bool {
		for _, d := range f.all() {
			if match(d) {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

// refreshes records NeedRefresh calls.
type refreshes struct {
	mu    sync.Mutex
	names []string
}

func (r *refreshes) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, name)
}

func (r *refreshes) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inSync matches the in-sync report of release.
func inSync(release string) func(reconcile.Drift) bool {
	return func(d reconcile.Drift) bool { return d.Release == release && len(d.Objects) == 0 && d.Error == "" }
}

// corrected matches a correction of kind name in release.
func corrected(release, kind, name string) func(reconcile.Drift) bool {
	return func(d reconcile.Drift) bool {
		return d.Release == release && d.Corrected && slices.ContainsFunc(d.Objects, func(o reconcile.ObjectDrift) bool { return o.Kind == kind && o.Name == name })
	}
}

// object returns the drift of kind name in d.
func object(t *testing.T, d reconcile.Drift, kind, name string) reconcile.ObjectDrift {
	t.Helper()
	for _, o := range d.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	t.Fatalf("report %+v does not name %s %s", d, kind, name)
	return reconcile.ObjectDrift{}
}

const webBundle = `apiVersion: apps/v1
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
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  color: blue
`

// imagePath is the field of the web container's image.
const imagePath = "/spec/template/spec/containers/[name=app]/image"

// webRelease applies the web bundle as release name at revision 1 and
// returns its desired state.
func (s *setup) webRelease(t *testing.T, name string, mode reconcile.Mode, ignore ...reconcile.IgnoreRule) reconcile.Release {
	t.Helper()
	spec := taskspec.Manifests{Release: name, Namespace: s.target, Revision: 1, Bundle: webBundle}
	s.apply(t, spec)
	return reconcile.Release{Name: name, Kind: reconcile.KindManifests, Revision: 1, Mode: mode, Ignore: ignore, Manifests: &spec}
}

func (s *setup) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(s.target).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// edit changes a Deployment as an operator would with kubectl edit.
func (s *setup) edit(t *testing.T, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	d := s.deployment(t, name)
	change(d)
	if _, err := env.Client.AppsV1().Deployments(s.target).Update(t.Context(), d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
}

func (s *setup) image(t *testing.T, name string) string {
	t.Helper()
	return s.deployment(t, name).Spec.Template.Spec.Containers[0].Image
}

// events returns the reasons of the Events about kind name.
func (s *setup) events(t *testing.T, kind, name string) []corev1.Event {
	t.Helper()
	list, err := env.Client.CoreV1().Events(s.target).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event of reason about kind name whose message
// mentions text, and returns it.
func (s *setup) waitEvent(t *testing.T, kind, name, reason, text string) corev1.Event {
	t.Helper()
	var found corev1.Event
	waitFor(t, reason+" event on "+kind+" "+name, func() bool {
		for _, e := range s.events(t, kind, name) {
			if e.Reason == reason && strings.Contains(e.Message, text) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}
