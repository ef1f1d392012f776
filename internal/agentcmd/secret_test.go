package agentcmd

import (
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/seal/sealk8s"
	"github.com/outposthq/outpost/internal/taskspec"
)

// hubKeys returns the public keys the hub holds for env, by version.
func hubKeys(t *testing.T, h *hubtest.Hub, env string) map[int]seal.PublicKey {
	t.Helper()
	res, err := h.Operator.GetEnvironmentKeys(t.Context(), connect.NewRequest(&outpostv1.GetEnvironmentKeysRequest{Environment: env}))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]seal.PublicKey{}
	for _, k := range res.Msg.GetKeys() {
		out[int(k.GetVersion())] = seal.PublicKey{Env: "acme/" + env, Version: int(k.GetVersion()), Recipient: k.GetRecipient(), Fingerprint: k.GetFingerprint()}
	}
	return out
}

// setSecret seals values to pub as the CLI does, stores them with the hub
// and waits for the agent's task to succeed.
func setSecret(t *testing.T, h *hubtest.Hub, pub seal.PublicKey, ns, name string, values map[string][]byte) {
	t.Helper()
	sealed, err := seal.Seal(pub, name, values)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range values {
		keys = append(keys, k)
	}
	res, err := h.Operator.SetSecret(t.Context(), connect.NewRequest(&outpostv1.SetSecretRequest{
		Environment: "prod", Namespace: ns, Name: name, Sealed: doc, Keys: keys,
	}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetTask().GetId()
	task := h.WaitTask(t, id, 30*time.Second, hubtest.Terminal)
	if task.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("secret task %s ended %s: %s", id, task.GetState(), task.GetError())
	}
}

func TestAgentKeepsTheEnvironmentKeyAndOpensSealedSecrets(t *testing.T) {
	isolate(t)
	h := hubtest.Start(t, hubtest.Options{})
	boot := h.CreateEnvironment(t, "prod")
	self := kenv.Namespace(t, "outpost")
	target := kenv.Namespace(t, "app")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "secret-agent", Namespace: self, Targets: []string{target}})
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	args := []string{"--hub", h.URL, "--ca-file", h.CAFile, "--environment", "acme/prod",
		"--kubeconfig", kubeconfig, "--namespace", self, "--environment-key-secret", "env-key",
		"--environment-key-refresh", "200ms"}
	first := startAgent(t, append(args, "--bootstrap-token", boot)...)
	first.waitStarted(t)

	keySecret, err := kenv.Client.CoreV1().Secrets(self).Get(t.Context(), "env-key", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no environment key Secret after the agent started: %v\n%s", err, first.logs)
	}
	if keySecret.Type != sealk8s.SecretType {
		t.Errorf("the key Secret has type %q, want %q", keySecret.Type, sealk8s.SecretType)
	}
	var published map[int]seal.PublicKey
	deadline := time.Now().Add(10 * time.Second)
	for published = hubKeys(t, h, "prod"); len(published) == 0 && time.Now().Before(deadline); published = hubKeys(t, h, "prod") {
		time.Sleep(50 * time.Millisecond)
	}
	store, err := sealk8s.New(sealk8s.Options{Client: kenv.Client.CoreV1(), Namespace: self, Name: "env-key"})
	if err != nil {
		t.Fatal(err)
	}
	kr, _, err := store.LoadOrCreate(t.Context(), "acme/prod")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := published[1].Fingerprint, kr.Newest().Public().Fingerprint; len(published) != 1 || got != want {
		t.Fatalf("the hub holds keys %v, want version 1 with fingerprint %s", published, want)
	}

	const password = "correct-horse-battery-staple"
	t.Run("a value sealed to the published key becomes a Secret in the target namespace", func(t *testing.T) {
		setSecret(t, h, published[1], target, "db", map[string][]byte{"password": []byte(password)})
		got, err := kenv.Client.CoreV1().Secrets(target).Get(t.Context(), "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data["password"]) != password {
			t.Fatalf("Secret data = %v, want the sealed password", got.Data)
		}
	})

	t.Run("a key rotated by another replica opens the next value without a restart", func(t *testing.T) {
		rotated, err := store.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		v2 := rotated.Newest().Public()
		// The agent publishes the new version at its next refresh.
		deadline := time.Now().Add(10 * time.Second)
		for len(hubKeys(t, h, "prod")) < 2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := hubKeys(t, h, "prod")[2].Fingerprint; got != v2.Fingerprint {
			t.Fatalf("the hub holds version 2 as %q, want the rotated key %s", got, v2.Fingerprint)
		}
		setSecret(t, h, v2, target, "db", map[string][]byte{"password": []byte(password + "-2")})
		got, err := kenv.Client.CoreV1().Secrets(target).Get(t.Context(), "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data["password"]) != password+"-2" {
			t.Fatalf("Secret data = %v, want the value sealed to version 2", got.Data)
		}
	})

	var second *process
	t.Run("a restarted agent keeps its key", func(t *testing.T) {
		first.stop()
		second = startAgent(t, args...)
		second.waitStarted(t)
		if strings.Contains(second.logs.String(), "created the environment key") || !strings.Contains(second.logs.String(), "environment keys published") {
			t.Errorf("the restarted agent did not publish its stored keys:\n%s", second.logs)
		}
		keys := hubKeys(t, h, "prod")
		if keys[1].Fingerprint != published[1].Fingerprint || len(keys) != 2 {
			t.Fatalf("after a restart the hub holds %v; want the same version 1 and the rotated version 2", keys)
		}
		// The hub would refuse a new version 1, so the agent must still
		// open values sealed to the old one.
		setSecret(t, h, published[1], target, "api", map[string][]byte{"token": []byte(password + "-3")})
	})

	t.Run("neither the private keys nor a value reach the log", func(t *testing.T) {
		kr, _, err := store.LoadOrCreate(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		logs := first.logs.String()
		if second != nil {
			logs += second.logs.String()
		}
		for name, v := range seal.EncodeKeyring(kr) {
			if name != seal.DataEnvironment && strings.Contains(logs, string(v)) {
				t.Fatalf("the agent logged private key %s", name)
			}
		}
		if strings.Contains(logs, password) {
			t.Fatal("the agent logged a secret value")
		}
		if !strings.Contains(logs, "created the environment key") || !strings.Contains(logs, "environment keys published") {
			t.Errorf("the log does not tell the key's creation and publication:\n%s", logs)
		}
	})
}

func TestEnvironmentKeyring(t *testing.T) {
	newKeyring := func(t *testing.T) (*environmentKeyring, *syncBuffer, string) {
		t.Helper()
		ns := kenv.Namespace(t, "keyring")
		store, err := sealk8s.New(sealk8s.Options{Client: kenv.Client.CoreV1(), Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		return &environmentKeyring{store: store, client: kenv.Client, where: ns + "/" + sealk8s.DefaultName, log: log}, logs, ns
	}

	t.Run("a secret task before the environment is known is retried, not failed", func(t *testing.T) {
		k, _, _ := newKeyring(t)
		_, err := k.Execute(t.Context(), executor.Task{ID: "early", Kind: taskspec.KindSecret, Spec: []byte(`{}`)})
		if !errors.Is(err, errKeyringNotLoaded) || executor.IsTerminal(err) {
			t.Fatalf("err = %v, want the retryable errKeyringNotLoaded", err)
		}
	})

	t.Run("the first call creates the key and later calls return the same one", func(t *testing.T) {
		k, logs, _ := newKeyring(t)
		first, err := k.PublicKeys(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		again, err := k.PublicKeys(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != 1 || len(again) != 1 || first[0] != again[0] || first[0].Env != "acme/prod" || first[0].Version != 1 {
			t.Fatalf("keys = %v then %v, want one version 1 key of acme/prod, twice", first, again)
		}
		if strings.Count(logs.String(), "created the environment key") != 1 {
			t.Errorf("want one log line for the creation:\n%s", logs)
		}
	})

	t.Run("another environment than the bound one is refused", func(t *testing.T) {
		k, _, _ := newKeyring(t)
		if _, err := k.PublicKeys(t.Context(), "acme/prod"); err != nil {
			t.Fatal(err)
		}
		if _, err := k.PublicKeys(t.Context(), "acme/staging"); err == nil || !strings.Contains(err.Error(), "serves acme/prod, not acme/staging") {
			t.Fatalf("err = %v, want a refusal naming both environments", err)
		}
	})

	t.Run("a key Secret deleted under the agent is recreated with a warning", func(t *testing.T) {
		k, logs, ns := newKeyring(t)
		before, err := k.PublicKeys(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		if err := kenv.Client.CoreV1().Secrets(ns).Delete(t.Context(), sealk8s.DefaultName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		after, err := k.PublicKeys(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		if after[0].Fingerprint == before[0].Fingerprint {
			t.Fatal("the recreated key is the old one")
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "cannot be opened") {
			t.Errorf("the loss of the old key is not logged as a warning:\n%s", logs)
		}
	})
}
