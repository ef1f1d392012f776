package sealk8s

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/seal"
)

var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

const envID = "acme/prod"

func newStore(t *testing.T, client kubernetes.Interface, ns string) *Store {
	t.Helper()
	s, err := New(Options{Client: client.CoreV1(), Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func getSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	sec, err := env.Client.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// roundTrip seals to pub and opens with kr, proving kr holds pub's key.
func roundTrip(t *testing.T, kr *seal.Keyring, pub seal.PublicKey) {
	t.Helper()
	sealed, err := seal.Seal(pub, "api", map[string][]byte{"k": []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := seal.Open(kr, sealed, pub.Env, "api")
	if err != nil || string(got["k"]) != "v" {
		t.Fatalf("open: %q, %v", got["k"], err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	t.Run("the first call creates a labelled, typed Secret and later calls reload the same key", func(t *testing.T) {
		ns := env.Namespace(t, "agent")
		s := newStore(t, env.Client, ns)
		kr, created, err := s.LoadOrCreate(t.Context(), envID)
		if err != nil || !created {
			t.Fatalf("created %v, %v", created, err)
		}
		sec := getSecret(t, ns, DefaultName)
		if sec.Type != SecretType || sec.Labels[kube.LabelManagedBy] != kube.ManagedBy || sec.Annotations[AnnotationEnvironment] != envID {
			t.Fatalf("secret type %q labels %v annotations %v", sec.Type, sec.Labels, sec.Annotations)
		}
		again, created, err := newStore(t, env.Client, ns).LoadOrCreate(t.Context(), envID)
		if err != nil || created {
			t.Fatalf("reload: created %v, %v", created, err)
		}
		if again.Newest().Public() != kr.Newest().Public() {
			t.Fatalf("reloaded %v, created %v", again.Newest().Public(), kr.Newest().Public())
		}
		roundTrip(t, again, kr.Newest().Public())
	})

	t.Run("concurrent callers all end up with one key", func(t *testing.T) {
		ns := env.Namespace(t, "agent")
		const callers = 8
		var (
			wg      sync.WaitGroup
			pubs    [callers]seal.PublicKey
			creates [callers]bool
			errs    [callers]error
		)
		for i := range callers {
			wg.Go(func() {
				kr, created, err := newStore(t, env.Client, ns).LoadOrCreate(t.Context(), envID)
				errs[i], creates[i] = err, created
				if err == nil {
					pubs[i] = kr.Newest().Public()
				}
			})
		}
		wg.Wait()
		n := 0
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if pubs[i] != pubs[0] {
				t.Fatalf("caller %d got %v, caller 0 %v", i, pubs[i], pubs[0])
			}
			if creates[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d callers report creating the Secret, want 1", n)
		}
		stored, err := seal.DecodeKeyring(getSecret(t, ns, DefaultName).Data)
		if err != nil || stored.Newest().Public() != pubs[0] {
			t.Fatalf("stored %v, %v", stored, err)
		}
	})

	t.Run("a least-privilege agent can create and reload its key", func(t *testing.T) {
		ns := env.Namespace(t, "agent")
		cfg := env.AgentConfig(t, kubetest.Agent{Name: "agent-" + ns, Namespace: ns})
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := newStore(t, client, ns)
		if _, created, err := s.LoadOrCreate(t.Context(), envID); err != nil || !created {
			t.Fatalf("created %v, %v", created, err)
		}
		if _, err := s.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		kr, created, err := s.LoadOrCreate(t.Context(), envID)
		if err != nil || created || fmt.Sprint(kr.Versions()) != "[1 2]" {
			t.Fatalf("versions %v, created %v, %v", kr.Versions(), created, err)
		}
	})
}

func TestRotateRetire(t *testing.T) {
	ns := env.Namespace(t, "agent")
	s := newStore(t, env.Client, ns)
	kr1, _, err := s.LoadOrCreate(t.Context(), envID)
	if err != nil {
		t.Fatal(err)
	}
	oldPub := kr1.Newest().Public()
	sealedOld, err := seal.Seal(oldPub, "api", map[string][]byte{"k": []byte("old")})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("rotation is persisted and old values still open", func(t *testing.T) {
		kr, err := s.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if kr.Newest().Version() != 2 {
			t.Fatalf("newest version %d", kr.Newest().Version())
		}
		loaded, _, err := s.LoadOrCreate(t.Context(), envID)
		if err != nil || fmt.Sprint(loaded.Versions()) != "[1 2]" || loaded.Newest().Public() != kr.Newest().Public() {
			t.Fatalf("loaded %v, %v", loaded, err)
		}
		if _, err := seal.Open(loaded, sealedOld, envID, "api"); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, loaded, loaded.Newest().Public())
	})

	t.Run("concurrent rotations each add a version and none is lost", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { _, errs[i] = s.Rotate(t.Context()) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		loaded, _, err := s.LoadOrCreate(t.Context(), envID)
		if err != nil || fmt.Sprint(loaded.Versions()) != "[1 2 3 4 5]" {
			t.Fatalf("versions %v, %v", loaded.Versions(), err)
		}
	})

	t.Run("retiring is persisted and the retired version opens nothing", func(t *testing.T) {
		if _, err := s.Retire(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		loaded, _, err := s.LoadOrCreate(t.Context(), envID)
		if err != nil || fmt.Sprint(loaded.Versions()) != "[2 3 4 5]" {
			t.Fatalf("versions %v, %v", loaded.Versions(), err)
		}
		if _, err := seal.Open(loaded, sealedOld, envID, "api"); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})

	t.Run("retiring an absent or the newest version fails and changes nothing", func(t *testing.T) {
		before := getSecret(t, ns, DefaultName).ResourceVersion
		if _, err := s.Retire(t.Context(), 1); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("absent: err = %v", err)
		}
		if _, err := s.Retire(t.Context(), 5); !errors.Is(err, seal.ErrInvalidKey) {
			t.Fatalf("newest: err = %v", err)
		}
		if after := getSecret(t, ns, DefaultName).ResourceVersion; after != before {
			t.Fatalf("resourceVersion %s -> %s", before, after)
		}
	})
}

func TestForeignSecretRefused(t *testing.T) {
	otherEnvData := func(t *testing.T) map[string][]byte {
		k, err := seal.GenerateKey("acme/staging", 1)
		if err != nil {
			t.Fatal(err)
		}
		kr, err := seal.NewKeyring(k)
		if err != nil {
			t.Fatal(err)
		}
		return seal.EncodeKeyring(kr)
	}
	managed := map[string]string{kube.LabelManagedBy: kube.ManagedBy}
	tests := []struct {
		name    string
		secret  func(t *testing.T) *corev1.Secret
		wantErr error
	}{
		{"an Opaque Secret under the name is refused", func(*testing.T) *corev1.Secret {
			return &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("hunter2")}}
		}, ErrForeignSecret},
		{"an environment-key Secret without the managed-by label is refused", func(t *testing.T) *corev1.Secret {
			return &corev1.Secret{Type: SecretType, Data: otherEnvData(t)}
		}, ErrForeignSecret},
		{"another environment's key is refused", func(t *testing.T) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: managed}, Type: SecretType, Data: otherEnvData(t)}
		}, seal.ErrWrongEnvironment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := env.Namespace(t, "agent")
			sec := tt.secret(t)
			sec.Name = DefaultName
			if _, err := env.Client.CoreV1().Secrets(ns).Create(t.Context(), sec, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			before := getSecret(t, ns, DefaultName)
			s := newStore(t, env.Client, ns)
			if _, _, err := s.LoadOrCreate(t.Context(), envID); !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadOrCreate: err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, ErrForeignSecret) {
				if _, err := s.Rotate(t.Context()); !errors.Is(err, ErrForeignSecret) {
					t.Fatalf("Rotate: err = %v", err)
				}
				if _, err := s.Retire(t.Context(), 1); !errors.Is(err, ErrForeignSecret) {
					t.Fatalf("Retire: err = %v", err)
				}
			}
			if after := getSecret(t, ns, DefaultName); after.ResourceVersion != before.ResourceVersion {
				t.Fatalf("the Secret was changed: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"a missing client is refused", Options{Namespace: "agent"}},
		{"a missing namespace is refused", Options{Client: env.Client.CoreV1()}},
		{"an invalid name is refused", Options{Client: env.Client.CoreV1(), Namespace: "agent", Name: "Not_Valid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
}
