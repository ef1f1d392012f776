package agentcmd

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/seal/sealk8s"
)

func TestOperatorRotatesAndRetiresTheEnvironmentKey(t *testing.T) {
	ns := kenv.Namespace(t, "keys")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := kenv.AgentConfig(t, kubetest.Agent{Name: "keys-operator", Namespace: ns})
	if err := kubetest.WriteKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatal(err)
	}
	store, err := sealk8s.New(sealk8s.Options{Client: kenv.Client.CoreV1(), Namespace: ns, Name: sealk8s.DefaultName})
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := store.LoadOrCreate(t.Context(), "acme/prod")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := NewRootCommand(&out, &errOut)
		cmd.SetArgs(append([]string{"keys"}, append(args, "--kubeconfig", kubeconfig, "--namespace", ns)...))
		err := cmd.ExecuteContext(t.Context())
		return out.String() + errOut.String(), err
	}
	v1 := first.Newest().Public()

	t.Run("rotate adds version 2 and keeps version 1 to open older values", func(t *testing.T) {
		out, err := run("rotate")
		if err != nil {
			t.Fatalf("keys rotate: %v\n%s", err, out)
		}
		kr, _, err := store.LoadOrCreate(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		if got := kr.Versions(); len(got) != 2 || kr.Newest().Version() != 2 {
			t.Fatalf("versions after rotate: %v", got)
		}
		if !strings.Contains(out, "key version 2") || !strings.Contains(out, v1.Fingerprint) {
			t.Fatalf("rotate output:\n%s", out)
		}
		if strings.Contains(out, "AGE-SECRET-KEY") {
			t.Fatal("rotate printed a private key")
		}
	})

	t.Run("the newest version cannot be retired; an older one can", func(t *testing.T) {
		if out, err := run("retire", "2"); err == nil {
			t.Fatalf("retiring the newest version succeeded:\n%s", out)
		}
		if out, err := run("retire", "1"); err != nil {
			t.Fatalf("keys retire 1: %v\n%s", err, out)
		}
		kr, _, err := store.LoadOrCreate(t.Context(), "acme/prod")
		if err != nil {
			t.Fatal(err)
		}
		if got := kr.Versions(); len(got) != 1 || got[0] != 2 {
			t.Fatalf("versions after retire: %v", got)
		}
	})

	t.Run("a version that is not a number is refused", func(t *testing.T) {
		if _, err := run("retire", "one"); err == nil || !strings.Contains(err.Error(), "not a positive number") {
			t.Fatalf("retire one: %v", err)
		}
	})
}
