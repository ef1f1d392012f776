package k8ssecret

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/vault"
)

var kenv *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &kenv) }

// Values stored in test Secrets. They are long and distinctive so that a
// leak into an error message cannot go unnoticed.
const (
	dbPassword    = "k8s-secret-db-password-7f3a9c"
	otherPassword = "k8s-secret-other-namespace-e41b02"
	hiddenToken   = "k8s-secret-not-granted-5d8e17"
)

var allValues = []string{dbPassword, otherPassword, hiddenToken}

// createSecret creates a Secret as the cluster administrator.
func createSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
	if _, err := kenv.Client.CoreV1().Secrets(ns).Create(t.Context(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newProvider(t *testing.T, client corev1client.SecretsGetter, ns string) *Provider {
	t.Helper()
	p, err := New(Options{Client: client, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRef(t *testing.T, s string) vault.Ref {
	t.Helper()
	ref, err := vault.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// resolve resolves s through a Resolver, as the agent does.
func resolve(t *testing.T, p *Provider, s string) (string, error) {
	t.Helper()
	r, err := vault.NewResolver(vault.ResolverOptions{Providers: map[string]vault.Provider{ProviderName: p}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Resolve(t.Context(), mustRef(t, s))
}

func assertNoValue(t *testing.T, err error) {
	t.Helper()
	for _, v := range allValues {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error %q leaks a secret value", err)
		}
	}
}

// recorder wraps a client and records every namespace it is asked for.
// It hands out Secret clients that implement only Get: any other call
// (List, Watch, ...) reaches a nil interface and panics, failing the test.
type recorder struct {
	client corev1client.SecretsGetter

	mu         sync.Mutex
	namespaces []string
}

func (r *recorder) Secrets(ns string) corev1client.SecretInterface {
	r.mu.Lock()
	r.namespaces = append(r.namespaces, ns)
	r.mu.Unlock()
	return getOnly{get: r.client.Secrets(ns)}
}

func (r *recorder) asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.namespaces...)
}

type getOnly struct {
	corev1client.SecretInterface // nil: only Get may be called
	get                          corev1client.SecretInterface
}

func (g getOnly) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	return g.get.Get(ctx, name, opts)
}

func TestLookup(t *testing.T) {
	self := kenv.Namespace(t, "agent")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "k8ssecret-lookup", Namespace: self})
	rec := &recorder{client: clientFor(t, cfg).CoreV1()}
	p := newProvider(t, rec, self)
	binary := string([]byte{0x00, 0xff, 0xfe, '\n', 'x'})
	createSecret(t, self, "db-creds", map[string][]byte{"password": []byte(dbPassword), "blob": []byte(binary), "empty": {}})

	tests := []struct {
		name, ref, want string
		wantErr         error
		wantMsg         string
	}{
		{name: "a present key resolves to its value", ref: "vault://k8s/db-creds/password", want: dbPassword},
		{name: "binary data resolves byte for byte", ref: "vault://k8s/db-creds/blob", want: binary},
		{name: "an empty value resolves to the empty string", ref: "vault://k8s/db-creds/empty", want: ""},
		{name: "a missing Secret names the Secret and the namespace", ref: "vault://k8s/nope/password", wantErr: vault.ErrNotFound,
			wantMsg: `vault: vault://k8s/nope/password: Secret "nope" not found in namespace "` + self + `"`},
		{name: "a missing key names the key, the Secret and the namespace", ref: "vault://k8s/db-creds/token", wantErr: vault.ErrNotFound,
			wantMsg: `vault: vault://k8s/db-creds/token: key "token" not found in Secret "db-creds" in namespace "` + self + `"`},
		{name: "a pinned version is refused", ref: "vault://k8s/db-creds/password/v2", wantErr: vault.ErrVersionUnsupported,
			wantMsg: "vault: vault://k8s/db-creds/password/v2: versions are not supported by the k8s provider"},
		{name: "a path of two segments is refused as malformed", ref: "vault://k8s/" + self + "/db-creds/password", wantErr: vault.ErrMalformedRef,
			wantMsg: `vault: vault://k8s/` + self + `/db-creds/password: path "` + self + `/db-creds": the k8s provider takes one path segment`},
		{name: "a path that is not a Secret name is refused as malformed", ref: "vault://k8s/DB_Creds/password", wantErr: vault.ErrMalformedRef,
			wantMsg: `vault: vault://k8s/DB_Creds/password: path "DB_Creds" is not a valid Secret name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(t, p, tt.ref)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve(%s) = %q, %v; want %q", tt.ref, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Resolve(%s) error = %v, want %v", tt.ref, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Fatalf("error = %q, want it to start with %q", err, tt.wantMsg)
			}
			if !vault.IsPermanent(err) {
				t.Fatalf("IsPermanent(%v) = false, want true", err)
			}
			assertNoValue(t, err)
		})
	}
	for _, ns := range rec.asked() {
		if ns != self {
			t.Errorf("the provider asked for Secrets in namespace %q, want only %q", ns, self)
		}
	}
}

func TestLookupRefusesBeforeReading(t *testing.T) {
	self := kenv.Namespace(t, "agent")
	rec := &recorder{client: kenv.Client.CoreV1()}
	p := newProvider(t, rec, self)
	for _, ref := range []string{"vault://k8s/a/b/key", "vault://k8s/Bad_Name/key", "vault://k8s/db/key/v1"} {
		if _, err := p.Lookup(t.Context(), mustRef(t, ref)); err == nil {
			t.Fatalf("Lookup(%s) succeeded", ref)
		}
	}
	if asked := rec.asked(); len(asked) > 0 {
		t.Fatalf("the provider made requests (namespaces %v) for references it refuses", asked)
	}
}

func TestLookupSeesRotationAtOnce(t *testing.T) {
	self := kenv.Namespace(t, "agent")
	p := newProvider(t, kenv.Client.CoreV1(), self)
	createSecret(t, self, "api", map[string][]byte{"token": []byte("old-token")})
	ref := mustRef(t, "vault://k8s/api/token")
	if got, err := p.Lookup(t.Context(), ref); err != nil || got != "old-token" {
		t.Fatalf("before rotation: %q, %v", got, err)
	}
	secrets := kenv.Client.CoreV1().Secrets(self)
	sec, err := secrets.Get(t.Context(), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data["token"] = []byte("new-token")
	if _, err := secrets.Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Lookup(t.Context(), ref); err != nil || got != "new-token" {
		t.Fatalf("after rotation: %q, %v; want the new value at once", got, err)
	}
	if err := secrets.Delete(t.Context(), "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lookup(t.Context(), ref); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("after deletion: %v, want ErrNotFound rather than a remembered value", err)
	}
}

func TestLookupNeverReadsAnotherNamespace(t *testing.T) {
	self := kenv.Namespace(t, "agent")
	other := kenv.Namespace(t, "app")
	// The agent may read everything in other, so only the provider keeps
	// it out.
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "k8ssecret-ns", Namespace: self, Targets: []string{other}})
	rec := &recorder{client: clientFor(t, cfg).CoreV1()}
	p := newProvider(t, rec, self)
	createSecret(t, other, "shared", map[string][]byte{"token": []byte(otherPassword)})

	tests := []struct {
		name, ref string
		wantErr   error
	}{
		{"a Secret that exists only in another namespace is not found", "vault://k8s/shared/token", vault.ErrNotFound},
		{"a namespace written as a path segment is refused", "vault://k8s/" + other + "/shared/token", vault.ErrMalformedRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Lookup(t.Context(), mustRef(t, tt.ref))
			if got != "" || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lookup(%s) = %q, %v; want %v", tt.ref, got, err, tt.wantErr)
			}
			assertNoValue(t, err)
		})
	}
	for _, ns := range rec.asked() {
		if ns != self {
			t.Fatalf("the provider asked for Secrets in namespace %q, want only %q", ns, self)
		}
	}
}

func TestLookupWithOnlyGetOnNamedSecrets(t *testing.T) {
	self := kenv.Namespace(t, "agent")
	home := kenv.Namespace(t, "home")
	// The user's own Roles are in home; in self it starts with nothing.
	const user = "k8ssecret-least"
	p := newProvider(t, clientFor(t, kenv.AgentConfig(t, kubetest.Agent{Name: user, Namespace: home})).CoreV1(), self)
	createSecret(t, self, "db-creds", map[string][]byte{"password": []byte(dbPassword)})
	createSecret(t, self, "hidden", map[string][]byte{"token": []byte(hiddenToken)})

	forbidden := func(t *testing.T, ref string) {
		t.Helper()
		got, err := resolve(t, p, ref)
		if got != "" || !errors.Is(err, vault.ErrForbidden) {
			t.Fatalf("Resolve(%s) = %q, %v; want ErrForbidden", ref, got, err)
		}
		want := `the agent's service account lacks "get" on secrets in "` + self + `"`
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
		if !vault.IsPermanent(err) {
			t.Fatalf("IsPermanent(%v) = false, want true", err)
		}
		if !apierrors.IsForbidden(err) {
			t.Fatalf("apierrors.IsForbidden(%v) = false; the API server's error should stay reachable", err)
		}
		assertNoValue(t, err)
	}

	t.Run("without a Role the lookup is forbidden and says what to grant", func(t *testing.T) {
		forbidden(t, "vault://k8s/db-creds/password")
	})

	grantGet(t, self, user, "db-creds")

	t.Run("get on the one named Secret is enough to read it", func(t *testing.T) {
		// The API server's RBAC cache takes a moment to see the new Role.
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := resolve(t, p, "vault://k8s/db-creds/password")
			if err == nil {
				if got != dbPassword {
					t.Fatalf("Resolve = %q, want the Secret's value", got)
				}
				return
			}
			if !errors.Is(err, vault.ErrForbidden) || time.Now().After(deadline) {
				t.Fatalf("Resolve with get granted: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("a Secret the Role does not name stays forbidden", func(t *testing.T) {
		forbidden(t, "vault://k8s/hidden/token")
	})
}

// grantGet binds user to a Role in ns allowing only get on the named Secrets.
func grantGet(t *testing.T, ns, user string, names ...string) {
	t.Helper()
	rbac := kenv.Client.RbacV1()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-read"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: names}},
	}
	if _, err := rbac.Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-read"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := rbac.RoleBindings(ns).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantMsg string
	}{
		{"a missing client is refused", Options{Namespace: "outpost"}, "client is required"},
		{"a missing namespace is refused", Options{Client: kenv.Client.CoreV1()}, "namespace is required"},
		{"an invalid namespace is refused", Options{Client: kenv.Client.CoreV1(), Namespace: "Bad_NS"}, `namespace "Bad_NS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("New error = %v, want one saying %q", err, tt.wantMsg)
			}
		})
	}
}
