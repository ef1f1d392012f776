package hub_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/taskspec"
)

func registerKey(t *testing.T, a *rawAgent, k *seal.KeyPair, retired bool) error {
	t.Helper()
	p := k.Public()
	_, err := a.client.RegisterEnvironmentKeys(t.Context(), connect.NewRequest(&outpostv1.RegisterEnvironmentKeysRequest{
		Keys: []*outpostv1.EnvironmentKey{{Version: int32(p.Version), Recipient: p.Recipient, Fingerprint: p.Fingerprint, Retired: retired}}, //nolint:gosec // small
	}))
	return err
}

func sealed(t *testing.T, k *seal.KeyPair, name string, values map[string][]byte) []byte {
	t.Helper()
	s, err := seal.Seal(k.Public(), name, values)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealedSecrets(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	h.CreateEnvironment(t, "dev")
	agent := mustEnroll(t, h, "prod")
	key, err := seal.GenerateKey(h.Tenant+"/prod", 1)
	if err != nil {
		t.Fatal(err)
	}
	devKey, err := seal.GenerateKey(h.Tenant+"/dev", 1)
	if err != nil {
		t.Fatal(err)
	}
	const plaintext = "hunter2-correct-horse"
	set := func(raw []byte) (*outpostv1.SetSecretResponse, error) {
		resp, err := h.Operator.SetSecret(t.Context(), connect.NewRequest(&outpostv1.SetSecretRequest{
			Environment: "prod", Namespace: "shop", Name: "db", Sealed: raw, Keys: []string{"password"},
		}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}

	t.Run("a secret cannot be set before an agent registered a key", func(t *testing.T) {
		_, err := set(sealed(t, key, "db", map[string][]byte{"password": []byte(plaintext)}))
		wantCode(t, err, connect.CodeFailedPrecondition)
	})

	t.Run("an agent registers its environment's public key; a different key for the same version is refused", func(t *testing.T) {
		if err := registerKey(t, agent, key, false); err != nil {
			t.Fatal(err)
		}
		if err := registerKey(t, agent, key, false); err != nil {
			t.Fatalf("registering the same key again: %v", err)
		}
		other, _ := seal.GenerateKey(h.Tenant+"/prod", 1)
		wantCode(t, registerKey(t, agent, other, false), connect.CodeFailedPrecondition)
		resp, err := h.Operator.GetEnvironmentKeys(t.Context(), connect.NewRequest(&outpostv1.GetEnvironmentKeysRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if ks := resp.Msg.GetKeys(); len(ks) != 1 || ks[0].GetRecipient() != key.Public().Recipient {
			t.Fatalf("keys = %v", ks)
		}
	})

	plainPayloads := []struct {
		name string
		raw  []byte
	}{
		{"a JSON object of values", []byte(`{"password":"` + plaintext + `"}`)},
		{"a Secret-like data map", []byte(`{"env":"acme/prod","name":"db","data":{"password":"` + plaintext + `"}}`)},
		{"raw text", []byte(plaintext)},
		{"a sealed shape whose ciphertext is plaintext", func() []byte {
			b, _ := json.Marshal(seal.Sealed{Env: h.Tenant + "/prod", Name: "db", KeyVersion: 1, Fingerprint: key.Public().Fingerprint, Ciphertext: []byte(plaintext)})
			return b
		}()},
	}
	for _, p := range plainPayloads {
		t.Run("a plaintext payload is refused: "+p.name, func(t *testing.T) {
			_, err := set(p.raw)
			wantCode(t, err, connect.CodeInvalidArgument)
			if strings.Contains(err.Error(), plaintext) {
				t.Fatalf("the error echoes the plaintext: %v", err)
			}
		})
	}

	t.Run("a value sealed for another environment or another secret is refused", func(t *testing.T) {
		_, err := set(sealed(t, devKey, "db", map[string][]byte{"password": []byte("x")}))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = set(sealed(t, key, "api", map[string][]byte{"password": []byte("x")}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})

	t.Run("a sealed value is stored and becomes a secret task; versions count up", func(t *testing.T) {
		for want := int64(1); want <= 2; want++ {
			got, err := set(sealed(t, key, "db", map[string][]byte{"password": []byte(plaintext)}))
			if err != nil {
				t.Fatal(err)
			}
			if got.GetSecret().GetVersion() != want || got.GetTask().GetKind() != taskspec.KindSecret {
				t.Fatalf("set = version %d task kind %q", got.GetSecret().GetVersion(), got.GetTask().GetKind())
			}
			var spec taskspec.Secret
			if err := json.Unmarshal(got.GetTask().GetSpec(), &spec); err != nil {
				t.Fatal(err)
			}
			if spec.Sealed == nil || spec.Namespace != "shop" || spec.Name != "db" {
				t.Fatalf("task spec = %+v", spec)
			}
			values, err := seal.Open(mustKeyring(t, key), spec.Sealed, h.Tenant+"/prod", "db")
			if err != nil || string(values["password"]) != plaintext {
				t.Fatalf("the agent could not open the task's value: %v", err)
			}
		}
	})

	t.Run("list and history show metadata only", func(t *testing.T) {
		resp, err := h.Operator.ListSecrets(t.Context(), connect.NewRequest(&outpostv1.ListSecretsRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if s := resp.Msg.GetSecrets(); len(s) != 1 || s[0].GetVersion() != 2 || s[0].GetKeys()[0] != "password" {
			t.Fatalf("secrets = %v", s)
		}
		hist, err := h.Operator.GetSecretHistory(t.Context(), connect.NewRequest(&outpostv1.GetSecretHistoryRequest{Environment: "prod", Namespace: "shop", Name: "db"}))
		if err != nil {
			t.Fatal(err)
		}
		if v := hist.Msg.GetVersions(); len(v) != 2 || v[0].GetVersion() != 2 {
			t.Fatalf("history = %v", v)
		}
	})

	t.Run("delete queues a delete task and a second delete is refused", func(t *testing.T) {
		resp, err := h.Operator.DeleteSecret(t.Context(), connect.NewRequest(&outpostv1.DeleteSecretRequest{Environment: "prod", Namespace: "shop", Name: "db"}))
		if err != nil {
			t.Fatal(err)
		}
		var spec taskspec.Secret
		if err := json.Unmarshal(resp.Msg.GetTask().GetSpec(), &spec); err != nil || !spec.Delete {
			t.Fatalf("delete task spec = %+v (%v)", spec, err)
		}
		_, err = h.Operator.DeleteSecret(t.Context(), connect.NewRequest(&outpostv1.DeleteSecretRequest{Environment: "prod", Namespace: "shop", Name: "db"}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		_, err = h.Operator.DeleteSecret(t.Context(), connect.NewRequest(&outpostv1.DeleteSecretRequest{Environment: "prod", Namespace: "shop", Name: "nope"}))
		wantCode(t, err, connect.CodeNotFound)
	})

	t.Run("a version missing from the agent's keyring is retired and takes no new values", func(t *testing.T) {
		key2, err := seal.GenerateKey(h.Tenant+"/prod", 2)
		if err != nil {
			t.Fatal(err)
		}
		// The keyring after rotating to version 2 and retiring version 1.
		if err := registerKey(t, agent, key2, false); err != nil {
			t.Fatal(err)
		}
		resp, err := h.Operator.GetEnvironmentKeys(t.Context(), connect.NewRequest(&outpostv1.GetEnvironmentKeysRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		if ks := resp.Msg.GetKeys(); len(ks) != 2 || !ks[0].GetRetired() || ks[1].GetRetired() {
			t.Fatalf("keys = %v, want version 1 retired and 2 active", ks)
		}
		_, err = set(sealed(t, key, "db", map[string][]byte{"password": []byte("x")}))
		wantCode(t, err, connect.CodeFailedPrecondition)
		if _, err := set(sealed(t, key2, "db", map[string][]byte{"password": []byte("x")})); err != nil {
			t.Fatalf("sealing to the new key: %v", err)
		}
	})

	t.Run("the hub's database never holds the plaintext", func(t *testing.T) {
		raw, err := os.ReadFile(h.DBPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{"", "-wal"} {
			if b, err := os.ReadFile(h.DBPath + suffix); err == nil {
				raw = append(raw, b...)
			}
		}
		if bytes.Contains(raw, []byte(plaintext)) {
			t.Fatal("the plaintext is in the hub's database files")
		}
	})
}

func mustKeyring(t *testing.T, k *seal.KeyPair) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
