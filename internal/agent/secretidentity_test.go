package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// startKube runs a kube-apiserver for one test. The agent package's other
// tests need no cluster, so this is not a TestMain that would skip them all
// where the binaries are missing.
func startKube(t *testing.T) *kubetest.Env {
	t.Helper()
	env, err := kubetest.Start()
	if errors.Is(err, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Log(err)
		}
	})
	return env
}

func newIdentity(t *testing.T, agentID string) Identity {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{AgentID: agentID, Environment: "acme/prod", Key: key}
}

// TestSecretIdentity runs as a least-privilege agent: a user bound only by
// a Role in its own namespace.
func TestSecretIdentity(t *testing.T) {
	env := startKube(t)
	ns := env.Namespace(t, "outpost")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: "identity-agent", Namespace: ns})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	store := func() SecretIdentity {
		seq++
		return SecretIdentity{Client: client, Namespace: ns, Name: fmt.Sprintf("identity-%d", seq)}
	}
	// admin writes Secrets the way a user or a chart might have.
	admin := env.Client.CoreV1().Secrets(ns)

	t.Run("the first save creates a typed, labelled, immutable Secret and a restart loads it", func(t *testing.T) {
		s := store()
		if _, err := s.Load(t.Context()); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Load() before enrollment = %v, want ErrNoIdentity", err)
		}
		want := newIdentity(t, "agt_first")
		if err := s.Save(t.Context(), want); err != nil {
			t.Fatal(err)
		}
		sec, err := admin.Get(t.Context(), s.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sec.Type != SecretIdentityType || sec.Labels["app.kubernetes.io/managed-by"] != "outpost" || sec.Immutable == nil || !*sec.Immutable {
			t.Errorf("Secret type %q, labels %v, immutable %v", sec.Type, sec.Labels, sec.Immutable)
		}
		restarted := SecretIdentity{Client: client, Namespace: ns, Name: s.Name}
		got, err := restarted.Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentID != want.AgentID || got.Environment != want.Environment || !got.Key.Equal(want.Key) {
			t.Errorf("Load() after restart = %s/%s, want %s/%s with the same key", got.AgentID, got.Environment, want.AgentID, want.Environment)
		}
	})

	t.Run("deleting the Secret means enrolling again", func(t *testing.T) {
		s := store()
		if err := s.Save(t.Context(), newIdentity(t, "agt_deleted")); err != nil {
			t.Fatal(err)
		}
		if err := admin.Delete(t.Context(), s.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(t.Context()); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Load() after delete = %v, want ErrNoIdentity", err)
		}
		if err := s.Save(t.Context(), newIdentity(t, "agt_reenrolled")); err != nil {
			t.Fatalf("Save() after delete: %v", err)
		}
	})

	t.Run("saving the same identity again is harmless", func(t *testing.T) {
		s := store()
		id := newIdentity(t, "agt_retry")
		for range 2 {
			if err := s.Save(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("racing replicas share the first identity and the others are told why theirs is not kept", func(t *testing.T) {
		s := store()
		const replicas = 8
		ids := make([]Identity, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			ids[i] = newIdentity(t, fmt.Sprintf("agt_replica_%d", i))
			wg.Go(func() {
				// Each replica has its own store value, as separate pods would.
				errs[i] = SecretIdentity{Client: client, Namespace: ns, Name: s.Name}.Save(t.Context(), ids[i])
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("replicas %d and %d both saved their identity", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrIdentityConflict):
				t.Errorf("replica %d: %v, want ErrIdentityConflict", i, err)
			case !strings.Contains(err.Error(), ns+"/"+s.Name) || !strings.Contains(err.Error(), "restarts"):
				t.Errorf("replica %d: error %q does not name the Secret and say what happens next", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no replica saved its identity: %v", errs)
		}
		got, err := s.Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentID != ids[winner].AgentID || !got.Key.Equal(ids[winner].Key) {
			t.Errorf("stored identity %s, want the winner's %s", got.AgentID, ids[winner].AgentID)
		}
		for i, err := range errs {
			if err == nil {
				continue
			}
			seed := ids[i].Key.Seed()
			for _, enc := range []string{hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), string(seed)} {
				if strings.Contains(err.Error(), enc) {
					t.Errorf("replica %d's error carries its private key", i)
				}
			}
		}
	})

	t.Run("an empty Secret of the identity type, pre-created for RBAC, is filled once", func(t *testing.T) {
		s := store()
		_, err := admin.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.Name}, Type: SecretIdentityType}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(t.Context()); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Load() of the placeholder = %v, want ErrNoIdentity", err)
		}
		id := newIdentity(t, "agt_placeholder")
		if err := s.Save(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(t.Context()); err != nil || got.AgentID != id.AgentID {
			t.Fatalf("Load() = %s, %v; want %s", got.AgentID, err, id.AgentID)
		}
		if err := s.Save(t.Context(), newIdentity(t, "agt_second")); !errors.Is(err, ErrIdentityConflict) {
			t.Fatalf("a second Save() = %v, want ErrIdentityConflict", err)
		}
	})

	t.Run("an incomplete Secret is refused with its name and what to do", func(t *testing.T) {
		s := store()
		_, err := admin.Create(t.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name},
			Type:       SecretIdentityType,
			Data:       map[string][]byte{"agent-id": []byte("agt_broken"), "ed25519-seed": []byte("short")},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Load(t.Context())
		if err == nil || errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Load() = %v, want an error about the incomplete Secret", err)
		}
		for _, part := range []string{"Secret " + ns + "/" + s.Name, "incomplete", "ed25519-seed", "enroll again"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q lacks %q", err, part)
			}
		}
		if err := s.Save(t.Context(), newIdentity(t, "agt_over_broken")); err == nil {
			t.Error("Save() over an incomplete Secret succeeded; it must not overwrite what it cannot read")
		}
	})

	t.Run("a Secret of another type is neither read nor overwritten", func(t *testing.T) {
		s := store()
		_, err := admin.Create(t.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name},
			Type:       corev1.SecretTypeOpaque,
			StringData: map[string]string{"password": "hunter2"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "--identity-secret") {
			t.Fatalf("Load() = %v, want a refusal pointing at --identity-secret", err)
		}
		if err := s.Save(t.Context(), newIdentity(t, "agt_foreign")); err == nil {
			t.Fatal("Save() overwrote a foreign Secret")
		}
		sec, err := admin.Get(t.Context(), s.Name, metav1.GetOptions{})
		if err != nil || string(sec.Data["password"]) != "hunter2" || len(sec.Data) != 1 {
			t.Fatalf("the foreign Secret changed: %v, %v", sec.Data, err)
		}
	})

	t.Run("another namespace is out of the agent's reach", func(t *testing.T) {
		other := env.Namespace(t, "other")
		s := SecretIdentity{Client: client, Namespace: other, Name: DefaultIdentitySecret}
		err := s.Save(t.Context(), newIdentity(t, "agt_elsewhere"))
		if err == nil || !strings.Contains(err.Error(), "Secret "+other+"/"+DefaultIdentitySecret) {
			t.Fatalf("Save() in another namespace = %v, want a forbidden error naming the Secret", err)
		}
	})
}
