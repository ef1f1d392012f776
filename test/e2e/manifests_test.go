package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// kubeRig is a hub process, a least-privilege agent process deploying into
// one namespace of a real kube-apiserver, and a CLI logged in to the hub.
type kubeRig struct {
	h          *hubProc
	env        *kubetest.Env
	kubeconfig string
	agentNS    string
	target     string
	cliConfig  string
	agent      *proc
	qps        string
	// agentArgs are extra flags of every agent process.
	agentArgs []string
}

func startKubeRig(t *testing.T, qps string) *kubeRig {
	t.Helper()
	return startKubeRigWith(t, qps)
}

// startKubeRigWith is startKubeRig whose agents get agentArgs.
func startKubeRigWith(t *testing.T, qps string, agentArgs ...string) *kubeRig {
	t.Helper()
	env := cluster(t)
	r := &kubeRig{env: env, h: startHubProc(t, "--lease-duration", "3s"), qps: qps, agentArgs: agentArgs}
	r.agentNS = env.Namespace(t, "outpost-system")
	r.target = env.Namespace(t, "shop")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: "agent-" + r.target, Namespace: r.agentNS, Targets: []string{r.target}})
	r.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(r.kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	r.cliConfig = filepath.Join(t.TempDir(), "outpost.yaml")
	r.cli(t, r.h.token, "login", "--hub", r.h.url(), "--token", "-", "--ca-file", r.h.caFile)
	r.agent = r.startAgent(t, r.h.bootstrap(t, "prod"))
	return r
}

// startAgent starts outpost-agent with its identity in a Secret of its
// namespace; bootstrap may be empty once it has enrolled.
func (r *kubeRig) startAgent(t *testing.T, bootstrap string) *proc {
	t.Helper()
	return r.startAgentIn(t, bootstrap)
}

// startAgentIn is startAgent for a process that lives as long as t (the
// top-level test when a subtest restarts the agent).
func (r *kubeRig) startAgentIn(t *testing.T, bootstrap string) *proc {
	t.Helper()
	args := []string{"--hub", r.h.url(), "--ca-file", r.h.caFile, "--kubeconfig", r.kubeconfig,
		"--namespace", r.agentNS, "--concurrency", "4", "--log-level", "debug"}
	if r.qps != "" {
		args = append(args, "--kube-qps", r.qps, "--kube-burst", r.qps)
	}
	if bootstrap != "" {
		args = append(args, "--bootstrap-token", bootstrap)
	}
	args = append(args, r.agentArgs...)
	return startProc(t, "outpost-agent", args...)
}

func (r *kubeRig) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := runCLI(t, r.cliConfig, stdin, args...)
	if err != nil {
		t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply runs a manifests task through the CLI and returns its result.
func (r *kubeRig) apply(t *testing.T, id, release, namespace, bundleDir string) manifests.Result {
	t.Helper()
	r.cli(t, "", "task", "run", "--env", "prod", "--kind", "manifests", "--id", id,
		"--release", release, "--namespace", namespace, "--bundle", bundleDir, "--wait")
	return r.result(t, id)
}

func (r *kubeRig) result(t *testing.T, id string) manifests.Result {
	t.Helper()
	return succeededResult[manifests.Result](t, r.h, id)
}

// succeededResult checks that task id succeeded and decodes its result.
func succeededResult[T any](t *testing.T, h *hubProc, id string) T {
	t.Helper()
	task := h.task(t, id)
	if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("task %s: %v: %s", id, task.GetState(), task.GetError())
	}
	var res T
	if err := json.Unmarshal(task.GetResult(), &res); err != nil {
		t.Fatalf("task %s result: %v\n%s", id, err, task.GetResult())
	}
	return res
}

// writeBundle writes one YAML file per document into a fresh directory.
func writeBundle(t *testing.T, docs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, doc := range docs {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func shopBundle() map[string]string {
	return map[string]string{
		"config": `apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  currency: EUR
`,
		"account": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop
`,
		"service": `apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
`,
		"deployment": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      serviceAccountName: shop
      containers:
      - name: shop
        image: ghcr.io/example/shop:1.4.2
        ports: [{containerPort: 8080}]
`,
	}
}

func outcomes(res manifests.Result) map[string]string {
	m := map[string]string{}
	for _, o := range res.Objects {
		m[o.Kind+"/"+o.Name] = o.Outcome
	}
	return m
}

func allOutcomes(t *testing.T, res manifests.Result, want string) {
	t.Helper()
	for _, o := range res.Objects {
		if o.Outcome != want {
			t.Errorf("%s %s: outcome %s (%s), want %s", o.Kind, o.Name, o.Outcome, o.Reason, want)
		}
	}
}

func TestManifestsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent")
	}
	r := startKubeRig(t, "")
	c := r.env.Client
	bundle := shopBundle()

	first := r.apply(t, "shop-1", "shop", r.target, writeBundle(t, bundle))
	t.Run("a first apply creates every object with Outpost's labels", func(t *testing.T) {
		if len(first.Objects) != 4 || first.Counts.Created != 4 {
			t.Fatalf("result %+v, want 4 created", first)
		}
		allOutcomes(t, first, "created")
		d, err := c.AppsV1().Deployments(r.target).Get(t.Context(), "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Labels["app.kubernetes.io/managed-by"] != "outpost" || d.Labels["outpost.dev/release"] != "shop" {
			t.Fatalf("deployment labels %v", d.Labels)
		}
		if !slices.ContainsFunc(d.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
			return f.Manager == "outpost" && f.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Fatalf("deployment was not server-side applied by manager outpost: %+v", d.ManagedFields)
		}
	})

	t.Run("the same bundle again leaves everything unchanged", func(t *testing.T) {
		again := r.apply(t, "shop-2", "shop", r.target, writeBundle(t, bundle))
		if again.Counts.Unchanged != 4 {
			t.Fatalf("counts %+v, want 4 unchanged", again.Counts)
		}
		allOutcomes(t, again, "unchanged")
	})

	t.Run("a revision without an object prunes it", func(t *testing.T) {
		smaller := shopBundle()
		delete(smaller, "config")
		res := r.apply(t, "shop-3", "shop", r.target, writeBundle(t, smaller))
		if got := outcomes(res)["ConfigMap/shop-config"]; got != "pruned" {
			t.Fatalf("configmap outcome %q, want pruned (%+v)", got, res.Objects)
		}
		if _, err := c.CoreV1().ConfigMaps(r.target).Get(t.Context(), "shop-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("pruned configmap: %v, want not found", err)
		}
	})

	t.Run("a foreign object with the same name is left untouched and reported", func(t *testing.T) {
		foreign := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: r.target},
			Data:       map[string]string{"owner": "the customer's own team"},
		}
		if _, err := c.CoreV1().ConfigMaps(r.target).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		withForeign := shopBundle()
		withForeign["billing"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: billing\ndata:\n  owner: outpost\n"
		res := r.apply(t, "shop-4", "shop", r.target, writeBundle(t, withForeign))
		var got manifests.ObjectResult
		for _, o := range res.Objects {
			if o.Name == "billing" {
				got = o
			}
		}
		if got.Outcome != "skipped" || !strings.Contains(got.Reason, "not managed by outpost") && !strings.Contains(got.Reason, "owned by") {
			t.Fatalf("billing: %+v, want skipped with a reason", got)
		}
		cm, err := c.CoreV1().ConfigMaps(r.target).Get(t.Context(), "billing", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["owner"] != "the customer's own team" || cm.Labels["app.kubernetes.io/managed-by"] == "outpost" {
			t.Fatalf("foreign configmap was changed: %v %v", cm.Data, cm.Labels)
		}
	})

	t.Run("a bundle of several MiB travels as an artifact and is applied", func(t *testing.T) {
		big := map[string]string{}
		value := strings.Repeat("x", 120<<10)
		for i := range 40 {
			big[fmt.Sprintf("blob-%02d", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: blob-%02d\ndata:\n  payload: %s\n", i, value)
		}
		res := r.apply(t, "blobs-1", "blobs", r.target, writeBundle(t, big))
		if res.Counts.Created != 40 {
			t.Fatalf("counts %+v, want 40 created", res.Counts)
		}
		task := r.h.task(t, "blobs-1")
		if len(task.GetArtifacts()) != 1 || len(task.GetSpec()) > 64<<10 {
			t.Fatalf("task carries %d artifacts and a %d-byte spec; want the bundle as one artifact", len(task.GetArtifacts()), len(task.GetSpec()))
		}
		cm, err := c.CoreV1().ConfigMaps(r.target).Get(t.Context(), "blob-39", metav1.GetOptions{})
		if err != nil || len(cm.Data["payload"]) != len(value) {
			t.Fatalf("blob-39: %v, payload of %d bytes", err, len(cm.Data["payload"]))
		}
	})

	t.Run("a task for another namespace fails validation naming the missing permission", func(t *testing.T) {
		out, err := runCLI(t, r.cliConfig, "", "task", "run", "--env", "prod", "--kind", "manifests", "--id", "shop-elsewhere",
			"--release", "elsewhere", "--namespace", "kube-system", "--bundle", writeBundle(t, shopBundle()), "--wait")
		if err == nil {
			t.Fatalf("task for kube-system succeeded:\n%s", out)
		}
		task := r.h.task(t, "shop-elsewhere")
		if task.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || !strings.Contains(task.GetError(), "kube-system") ||
			!strings.Contains(strings.ToLower(task.GetError()), "permission") && !strings.Contains(strings.ToLower(task.GetError()), "forbidden") && !strings.Contains(task.GetError(), "cannot") {
			t.Fatalf("task %v: %q, want a failure naming kube-system and the missing permission", task.GetState(), task.GetError())
		}
		if task.GetAttempt() != 1 {
			t.Errorf("attempts %d: a permission failure is terminal and must not be retried", task.GetAttempt())
		}
		if _, err := c.AppsV1().Deployments("kube-system").Get(t.Context(), "shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("deployment in kube-system: %v, want not found", err)
		}
	})
}

// TestManifestsAgentKilledMidApply kills the agent while it applies a
// bundle; a new agent process (same identity, from the Secret) finishes the
// retried attempt, and the result equals that of an uninterrupted run.
func TestManifestsAgentKilledMidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and agents, and kills one")
	}
	// A low client rate limit makes the apply last long enough to be
	// interrupted in the middle.
	r := startKubeRig(t, "40")
	const n = 120
	docs := map[string]string{}
	for i := range n {
		docs[fmt.Sprintf("cm-%03d", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%03d\ndata:\n  index: %q\n", i, fmt.Sprint(i))
	}
	dir := writeBundle(t, docs)
	ref := r.env.Namespace(t, "reference")
	// The same user may also deploy into the reference namespace.
	r.env.AgentConfig(t, kubetest.Agent{Name: "agent-" + r.target, Namespace: ref, Targets: []string{ref}})

	if _, err := runCLI(t, r.cliConfig, "", "task", "run", "--env", "prod", "--kind", "manifests", "--id", "interrupted",
		"--release", "bulk", "--namespace", r.target, "--bundle", dir); err != nil {
		t.Fatal(err)
	}
	applied := func(ns string) int {
		list, err := r.env.Client.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "outpost.dev/release=bulk"})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	// Kill it once a good part, but not all, of the bundle is applied.
	deadline := time.Now().Add(60 * time.Second)
	for applied(r.target) < n/4 {
		if time.Now().After(deadline) {
			t.Fatal("the agent applied nothing within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.agent.kill()
	atKill := applied(r.target)
	if atKill >= n {
		t.Fatalf("all %d objects were applied before the kill; the test did not interrupt anything", n)
	}
	if task := r.h.task(t, "interrupted"); hubtest.Terminal(task) {
		t.Fatalf("task finished before the kill: %v", task.GetState())
	}
	t.Logf("killed the agent with %d of %d objects applied", atKill, n)

	r.agent = r.startAgent(t, "")
	got := r.h.waitTask(t, "interrupted", 2*time.Minute, hubtest.Terminal)
	if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() < 2 {
		t.Fatalf("task %v at attempt %d (%s), want succeeded on a later attempt", got.GetState(), got.GetAttempt(), got.GetError())
	}
	interrupted := r.result(t, "interrupted")
	want := r.apply(t, "uninterrupted", "bulk-ref", ref, dir)

	t.Run("every object exists once the retried attempt finished", func(t *testing.T) {
		if got := applied(r.target); got != n {
			t.Fatalf("%d objects, want %d", got, n)
		}
	})
	t.Run("the retried attempt reports what an uninterrupted run reports", func(t *testing.T) {
		if interrupted.Counts != want.Counts {
			t.Fatalf("counts %+v, uninterrupted run %+v", interrupted.Counts, want.Counts)
		}
		if g, w := outcomes(interrupted), outcomes(want); !maps.Equal(g, w) {
			t.Fatalf("outcomes differ:\ninterrupted   %v\nuninterrupted %v", g, w)
		}
		if interrupted.Counts.Created != n {
			t.Fatalf("counts %+v, want %d created", interrupted.Counts, n)
		}
	})
	t.Run("the restarted agent reused its identity instead of enrolling again", func(t *testing.T) {
		resp, err := r.h.operator.ListAgents(t.Context(), connect.NewRequest(&outpostv1.ListAgentsRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.GetAgents()) != 1 {
			t.Fatalf("%d agents enrolled, want 1", len(resp.Msg.GetAgents()))
		}
	})
}

// TestManifestsTasksRunInParallelUnlessTheyShareARelease enqueues two
// overlapping tasks for one release and two for different releases: the
// first pair runs one after the other, the second at the same time.
func TestManifestsTasksRunInParallelUnlessTheyShareARelease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent")
	}
	// Rate-limited so that each task lasts long enough to overlap.
	r := startKubeRig(t, "40")
	bundle := func(prefix string) string {
		docs := map[string]string{}
		for i := range 30 {
			docs[fmt.Sprintf("%s-%02d", prefix, i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%02d\n", prefix, i)
		}
		return writeBundle(t, docs)
	}
	queue := func(id, release string, dir string) {
		t.Helper()
		r.cli(t, "", "task", "run", "--env", "prod", "--kind", "manifests", "--id", id,
			"--release", release, "--namespace", r.target, "--bundle", dir)
	}
	same := bundle("same")
	queue("same-a", "same", same)
	queue("same-b", "same", same)
	queue("apart-a", "apart-a", bundle("apart-a"))
	queue("apart-b", "apart-b", bundle("apart-b"))
	for _, id := range []string{"same-a", "same-b", "apart-a", "apart-b"} {
		if got := r.h.waitTask(t, id, 2*time.Minute, hubtest.Terminal); got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("task %s: %v: %s", id, got.GetState(), got.GetError())
		}
	}
	claimed := r.h.auditTimes(t, "agent.task_claimed")
	done := r.h.auditTimes(t, "agent.task_completed")
	overlap := func(a, b string) bool {
		return claimed[a].Before(done[b]) && claimed[b].Before(done[a])
	}
	t.Run("tasks of one release never overlap", func(t *testing.T) {
		if overlap("same-a", "same-b") {
			t.Fatalf("same-a ran %v..%v and same-b %v..%v", claimed["same-a"], done["same-a"], claimed["same-b"], done["same-b"])
		}
	})
	t.Run("tasks of different releases run at the same time", func(t *testing.T) {
		if !overlap("apart-a", "apart-b") {
			t.Fatalf("apart-a ran %v..%v and apart-b %v..%v", claimed["apart-a"], done["apart-a"], claimed["apart-b"], done["apart-b"])
		}
	})
}
