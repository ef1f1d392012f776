package secret_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/secret"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/taskspec"
)

var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

const envID = "acme/prod"

var userSeq atomic.Int64

// redactor records every value registered.
type redactor struct {
	mu   sync.Mutex
	seen []string
}

func (r *redactor) AddSecret(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, v)
}

func (r *redactor) has(v string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		if s == v {
			return true
		}
	}
	return false
}

func keyring(t *testing.T, envID string) *seal.Keyring {
	t.Helper()
	k, err := seal.GenerateKey(envID, 1)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// fixture is an executor for one target namespace and the keyring it opens
// values with.
type fixture struct {
	ns string
	kr *seal.Keyring
	ex *secret.Executor
}

// leastPrivilege runs the executor as an agent with full rights in its
// target namespace only.
func leastPrivilege(t *testing.T) fixture {
	t.Helper()
	own := env.Namespace(t, "agent")
	ns := env.Namespace(t, "app")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: fmt.Sprintf("secret-agent-%d", userSeq.Add(1)), Namespace: own, Targets: []string{ns}})
	return newFixture(t, ns, cfg)
}

// patchOnly runs the executor as a user who may write Secrets but only
// get, list and patch workloads.
func patchOnly(t *testing.T) fixture {
	t.Helper()
	own := env.Namespace(t, "agent")
	ns := env.Namespace(t, "app")
	user := fmt.Sprintf("secret-patcher-%d", userSeq.Add(1))
	cfg := env.AgentConfig(t, kubetest.Agent{Name: user, Namespace: own})
	ctx := t.Context()
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get", "list", "patch"}},
	}
	if _, err := env.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newFixture(t, ns, cfg)
}

func newFixture(t *testing.T, ns string, cfg *rest.Config) fixture {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kr := keyring(t, envID)
	ex, err := secret.New(secret.Options{
		Client:  client,
		Keyring: func(context.Context) (*seal.Keyring, error) { return kr, nil },
		Env:     envID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{ns: ns, kr: kr, ex: ex}
}

func sealWith(t *testing.T, kr *seal.Keyring, name string, values map[string]string) *seal.Sealed {
	t.Helper()
	raw := map[string][]byte{}
	for k, v := range values {
		raw[k] = []byte(v)
	}
	s, err := seal.Seal(kr.Newest().Public(), name, raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f fixture) task(t *testing.T, spec taskspec.Secret, r *redactor) executor.Task {
	t.Helper()
	spec.Namespace = f.ns
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return executor.Task{ID: "t", Kind: taskspec.KindSecret, Spec: raw, Attempt: 1, Redact: r}
}

// run executes spec and decodes the result, failing if any of secrets
// appears in it.
func (f fixture) run(t *testing.T, spec taskspec.Secret, secrets ...string) secret.Result {
	t.Helper()
	r := &redactor{}
	raw, err := f.ex.Execute(t.Context(), f.task(t, spec, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Fatalf("result %s holds a value", raw)
		}
		if !r.has(s) && spec.Sealed != nil {
			t.Fatalf("value %q was not registered with the redactor", s)
		}
	}
	var res secret.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func getSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := env.Client.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApply(t *testing.T) {
	f := leastPrivilege(t)
	v1 := map[string]string{"password": "hunter2-first", "user": "svc-api"}
	s1 := sealWith(t, f.kr, "api", v1)

	res := f.run(t, taskspec.Secret{Name: "api", Sealed: s1}, "hunter2-first", "svc-api")
	if res.Outcome != secret.OutcomeCreated || res.Secret != "api" || res.Namespace != f.ns || res.KeyVersion != 1 {
		t.Fatalf("first apply: %+v", res)
	}
	got := getSecret(t, f.ns, "api")
	if got.Type != corev1.SecretTypeOpaque || got.Labels["app.kubernetes.io/managed-by"] != "outpost" || got.Labels["outpost.dev/secret"] != "api" {
		t.Fatalf("secret type %s labels %v", got.Type, got.Labels)
	}
	if string(got.Data["password"]) != "hunter2-first" || string(got.Data["user"]) != "svc-api" || len(got.Data) != 2 {
		t.Fatalf("secret data %q", got.Data)
	}
	if got.Annotations["outpost.dev/key-version"] != "1" || got.Annotations["outpost.dev/secret-checksum"] != secret.Checksum(got.Data) {
		t.Fatalf("annotations %v", got.Annotations)
	}

	t.Run("the same sealed value again writes nothing", func(t *testing.T) {
		res := f.run(t, taskspec.Secret{Name: "api", Sealed: s1}, "hunter2-first")
		if res.Outcome != secret.OutcomeUnchanged {
			t.Fatalf("outcome %s, want unchanged", res.Outcome)
		}
		if again := getSecret(t, f.ns, "api"); again.ResourceVersion != got.ResourceVersion {
			t.Fatalf("resourceVersion %s → %s: the Secret was written", got.ResourceVersion, again.ResourceVersion)
		}
	})
	t.Run("a new value updates the secret", func(t *testing.T) {
		s2 := sealWith(t, f.kr, "api", map[string]string{"password": "hunter2-second"})
		res := f.run(t, taskspec.Secret{Name: "api", Sealed: s2}, "hunter2-second")
		if res.Outcome != secret.OutcomeUpdated {
			t.Fatalf("outcome %s, want updated", res.Outcome)
		}
		now := getSecret(t, f.ns, "api")
		if string(now.Data["password"]) != "hunter2-second" || len(now.Data) != 1 {
			t.Fatalf("secret data %q", now.Data)
		}
	})
}

func TestRefusedValues(t *testing.T) {
	f := leastPrivilege(t)
	const value = "do-not-leak-this"
	other := sealWith(t, keyring(t, "acme/staging"), "api", map[string]string{"k": value})
	tampered := sealWith(t, f.kr, "api", map[string]string{"k": value})
	tampered.Ciphertext[len(tampered.Ciphertext)-3] ^= 0x55
	forged := sealWith(t, keyring(t, envID), "api", map[string]string{"k": value})

	tests := []struct {
		name     string
		sealed   *seal.Sealed
		sentinel error
	}{
		{"a value sealed for another environment is refused", other, seal.ErrWrongEnvironment},
		{"a tampered value is refused", tampered, seal.ErrTampered},
		{"a value sealed to a key the environment does not hold is refused", forged, seal.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &redactor{}
			raw, err := f.ex.Execute(t.Context(), f.task(t, taskspec.Secret{Name: "api", Sealed: tt.sealed}, r))
			if err == nil || !executor.IsTerminal(err) || !errors.Is(err, tt.sentinel) {
				t.Fatalf("result %s, error %v: want a terminal error wrapping %v", raw, err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), "api") || strings.Contains(err.Error(), value) {
				t.Fatalf("error %q: want it to name the secret and hold no value", err)
			}
			if getSecret(t, f.ns, "api") != nil {
				t.Fatal("a Secret was written")
			}
		})
	}
	t.Run("a task without a redactor is refused before opening", func(t *testing.T) {
		tk := f.task(t, taskspec.Secret{Name: "api", Sealed: sealWith(t, f.kr, "api", map[string]string{"k": value})}, nil)
		tk.Redact = nil
		if _, err := f.ex.Execute(t.Context(), tk); !errors.Is(err, secret.ErrNoRedactor) || !executor.IsTerminal(err) {
			t.Fatalf("error %v, want terminal ErrNoRedactor", err)
		}
	})
	t.Run("an invalid spec is terminal", func(t *testing.T) {
		tk := executor.Task{ID: "t", Kind: taskspec.KindSecret, Spec: json.RawMessage(`{"name":"api","namespace":"` + f.ns + `","stringData":{"k":"v"}}`), Redact: &redactor{}}
		if _, err := f.ex.Execute(t.Context(), tk); !executor.IsTerminal(err) || !errors.Is(err, taskspec.ErrInvalidSpec) {
			t.Fatalf("error %v, want terminal ErrInvalidSpec", err)
		}
	})
}

func TestForeignSecret(t *testing.T) {
	f := leastPrivilege(t)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: f.ns}, Data: map[string][]byte{"k": []byte("theirs")}}
	created, err := env.Client.CoreV1().Secrets(f.ns).Create(t.Context(), foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := sealWith(t, f.kr, "db", map[string]string{"k": "ours-value"})

	t.Run("it is skipped and left untouched", func(t *testing.T) {
		res := f.run(t, taskspec.Secret{Name: "db", Sealed: s}, "ours-value")
		if res.Outcome != secret.OutcomeSkipped || !strings.Contains(res.Reason, "not managed by Outpost") {
			t.Fatalf("result %+v, want skipped", res)
		}
		got := getSecret(t, f.ns, "db")
		if got.ResourceVersion != created.ResourceVersion || string(got.Data["k"]) != "theirs" {
			t.Fatalf("the foreign Secret changed: %v", got.Labels)
		}
	})
	t.Run("it is not deleted", func(t *testing.T) {
		res := f.run(t, taskspec.Secret{Name: "db", Delete: true})
		if res.Outcome != secret.OutcomeSkipped || getSecret(t, f.ns, "db") == nil {
			t.Fatalf("result %+v, want skipped and the Secret kept", res)
		}
	})
	t.Run("adopt takes it over", func(t *testing.T) {
		res := f.run(t, taskspec.Secret{Name: "db", Sealed: s, Adopt: true}, "ours-value")
		if res.Outcome != secret.OutcomeUpdated {
			t.Fatalf("outcome %s, want updated", res.Outcome)
		}
		got := getSecret(t, f.ns, "db")
		if string(got.Data["k"]) != "ours-value" || got.Labels["app.kubernetes.io/managed-by"] != "outpost" {
			t.Fatalf("adopted Secret data %q labels %v", got.Data, got.Labels)
		}
		if res := f.run(t, taskspec.Secret{Name: "db", Sealed: s}, "ours-value"); res.Outcome != secret.OutcomeUnchanged {
			t.Fatalf("after adoption: outcome %s, want unchanged", res.Outcome)
		}
	})
}

func TestDelete(t *testing.T) {
	f := leastPrivilege(t)
	f.run(t, taskspec.Secret{Name: "api", Sealed: sealWith(t, f.kr, "api", map[string]string{"k": "value-1"})}, "value-1")
	if res := f.run(t, taskspec.Secret{Name: "api", Delete: true}); res.Outcome != secret.OutcomeDeleted {
		t.Fatalf("outcome %s, want deleted", res.Outcome)
	}
	if getSecret(t, f.ns, "api") != nil {
		t.Fatal("the Secret still exists")
	}
	if res := f.run(t, taskspec.Secret{Name: "api", Delete: true}); res.Outcome != secret.OutcomeAbsent {
		t.Fatalf("outcome %s, want absent", res.Outcome)
	}
}
