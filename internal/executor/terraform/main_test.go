package terraform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// childEnv switches the test binary into a child that runs one task and
// stays until it is killed or the task ends; the kill -9 test starts it.
const childEnv = "OUTPOST_TF_TEST_CHILD"

// childConfig is what the child runs, passed as JSON in childEnv.
type childConfig struct {
	Tofu       string          `json:"tofu"`
	Kubeconfig string          `json:"kubeconfig"`
	Namespace  string          `json:"namespace"`
	Holder     string          `json:"holder"`
	WorkRoot   string          `json:"work_root"`
	Spec       json.RawMessage `json:"spec"`
}

var (
	kubeOnce sync.Once
	kubeEnv  *kubetest.Env
	errKube  error
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	code := m.Run()
	if kubeEnv != nil {
		if err := kubeEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// runChild runs the task of the kill -9 test with a short fence, as an
// agent replica would.
func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rest, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kc, err := kubernetes.NewForConfig(rest)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ex, err := terraform.New(terraform.Options{
		TofuPath:      cfg.Tofu,
		KubeBackend:   &terraform.BackendConfig{Namespace: cfg.Namespace, ConfigPath: cfg.Kubeconfig},
		Kube:          kc,
		Holder:        cfg.Holder,
		FenceDuration: 2 * time.Second,
		WorkRoot:      cfg.WorkRoot,
		Vault:         fakeVault{},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out, err := ex.Execute(context.Background(), executor.Task{ID: "child", Kind: "terraform", Spec: cfg.Spec, Attempt: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, string(out))
	return 0
}

// kube returns the package's kube-apiserver, started on first use. Where
// its binaries are missing the test is skipped loudly, except under
// CI=true.
func kube(t *testing.T) *kubetest.Env {
	t.Helper()
	kubeOnce.Do(func() { kubeEnv, errKube = kubetest.Start() })
	if errors.Is(errKube, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		t.Skipf("SKIPPING a kubernetes backend test: %v", errKube)
	}
	if errKube != nil {
		t.Fatal(errKube)
	}
	return kubeEnv
}

// agentFixture is a namespace with a least-privilege agent identity in it,
// as the agent runs the executor.
type agentFixture struct {
	env        *kubetest.Env
	ns         string
	kubeconfig string
	client     kubernetes.Interface
}

func newAgentFixture(t *testing.T) *agentFixture {
	t.Helper()
	env := kube(t)
	ns := env.Namespace(t, "tf")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: "agent-" + ns, Namespace: ns})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &agentFixture{env: env, ns: ns, kubeconfig: kubeconfig, client: client}
}

// options are the executor options of a replica named holder.
func (a *agentFixture) options(t *testing.T, holder string, fence time.Duration) terraform.Options {
	t.Helper()
	return terraform.Options{
		TofuPath:      tofuPath(t),
		KubeBackend:   &terraform.BackendConfig{Namespace: a.ns, ConfigPath: a.kubeconfig},
		Kube:          a.client,
		Holder:        holder,
		FenceDuration: fence,
		WorkRoot:      t.TempDir(),
		Vault:         fakeVault{},
	}
}
