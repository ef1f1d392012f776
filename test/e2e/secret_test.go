package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/seal"
)

const (
	restartOnSecrets = "outpost.dev/restart-on-secrets"
	secretsChecksum  = "outpost.dev/secrets-checksum"
)

// leakForms are the ways a plaintext could show up: as is, and base64 (as
// JSON and protobuf text encode bytes).
func leakForms(plain string) [][]byte {
	return [][]byte{
		[]byte(plain),
		[]byte(base64.StdEncoding.EncodeToString([]byte(plain))),
		[]byte(base64.RawStdEncoding.EncodeToString([]byte(plain))),
	}
}

func assertNoLeak(t *testing.T, where string, b []byte, plains ...string) {
	t.Helper()
	for _, p := range plains {
		for _, form := range leakForms(p) {
			if bytes.Contains(b, form) {
				t.Errorf("the plaintext of a secret is in %s", where)
			}
		}
	}
}

func (r *kubeRig) checksum(t *testing.T, name string) string {
	t.Helper()
	return r.deployment(t, name).Spec.Template.Annotations[secretsChecksum]
}

// TestSealedSecretsEndToEnd sets secrets through the CLI, lets the agent
// write them, and then searches everything the hub and the agent wrote for
// the plaintext.
func TestSealedSecretsEndToEnd(t *testing.T) {
	r := startKubeRig(t, "")
	eventually(t, 30*time.Second, "agent published its key", func() bool {
		return strings.Contains(r.agent.out.String(), `msg="environment keys published"`)
	})
	c := r.env.Client
	ctx := t.Context()
	api := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Annotations: map[string]string{restartOnSecrets: "db"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "api:1"}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments(r.target).Create(ctx, api, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Data: map[string][]byte{"password": []byte("theirs")}}
	if _, err := c.CoreV1().Secrets(r.target).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first, second := "pw-first-9d1b7c3e0a", "pw-second-4f0e8a2b6c"
	set := func(name, value string) (string, error) {
		return runCLI(t, r.cliConfig, value, "secret", "set", "prod", name, "--namespace", r.target, "password=@-", "user=api", "--wait", "--timeout", "60s")
	}

	var sum1 string
	t.Run("a secret set through the CLI is written by the agent and rolls the Deployment following it", func(t *testing.T) {
		if out, err := set("db", first); err != nil {
			t.Fatalf("secret set: %v\n%s", err, out)
		}
		s, err := c.CoreV1().Secrets(r.target).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Data["password"]) != first || string(s.Data["user"]) != "api" {
			t.Fatalf("Secret db holds keys %v with the wrong values", len(s.Data))
		}
		eventually(t, 10*time.Second, "checksum on the pod template", func() bool { sum1 = r.checksum(t, "api"); return sum1 != "" })
	})

	t.Run("the same value again does not restart the Deployment; a new value does", func(t *testing.T) {
		if out, err := set("db", first); err != nil {
			t.Fatalf("secret set: %v\n%s", err, out)
		}
		if got := r.checksum(t, "api"); got != sum1 {
			t.Fatalf("checksum changed from %s to %s for an unchanged value", sum1, got)
		}
		if out, err := set("db", second); err != nil {
			t.Fatalf("secret set: %v\n%s", err, out)
		}
		if got := r.checksum(t, "api"); got == sum1 || got == "" {
			t.Fatalf("checksum %q after a new value, was %q", got, sum1)
		}
	})

	t.Run("a Secret Outpost does not manage is skipped and left alone", func(t *testing.T) {
		if out, err := set("legacy", "pw-never-written-77"); err != nil {
			t.Fatalf("secret set: %v\n%s", err, out)
		}
		list, err := r.h.operator.ListSecrets(ctx, connect.NewRequest(&outpostv1.ListSecretsRequest{Environment: "prod"}))
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list.Msg.GetSecrets() {
			if info.GetName() != "legacy" {
				continue
			}
			if res := string(r.h.task(t, info.GetTaskId()).GetResult()); !strings.Contains(res, "skipped") {
				t.Fatalf("the task's result does not report the foreign Secret skipped: %s", res)
			}
		}
		s, err := c.CoreV1().Secrets(r.target).Get(ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Data["password"]) != "theirs" {
			t.Fatal("the foreign Secret was overwritten")
		}
	})

	keys, err := r.h.operator.GetEnvironmentKeys(ctx, connect.NewRequest(&outpostv1.GetEnvironmentKeysRequest{Environment: "prod"}))
	if err != nil || len(keys.Msg.GetKeys()) == 0 {
		t.Fatalf("environment keys: %v", err)
	}
	k := keys.Msg.GetKeys()[0]
	pub := seal.PublicKey{Env: "acme/prod", Version: int(k.GetVersion()), Recipient: k.GetRecipient(), Fingerprint: k.GetFingerprint()}

	t.Run("a value sealed for another environment is refused by the hub", func(t *testing.T) {
		other := pub
		other.Env = "acme/dev"
		sealed, err := seal.Seal(other, "db", map[string][]byte{"password": []byte("pw-wrong-env-31")})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(sealed)
		_, err = r.h.operator.SetSecret(ctx, connect.NewRequest(&outpostv1.SetSecretRequest{Environment: "prod", Namespace: r.target, Name: "db", Sealed: raw}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("SetSecret with another environment's value: %v", err)
		}
	})

	t.Run("a tampered ciphertext fails on the agent and changes nothing", func(t *testing.T) {
		sealed, err := seal.Seal(pub, "db", map[string][]byte{"password": []byte("pw-tampered-58")})
		if err != nil {
			t.Fatal(err)
		}
		sealed.Ciphertext[len(sealed.Ciphertext)-5] ^= 0x40
		raw, _ := json.Marshal(sealed)
		resp, err := r.h.operator.SetSecret(ctx, connect.NewRequest(&outpostv1.SetSecretRequest{Environment: "prod", Namespace: r.target, Name: "db", Sealed: raw, Keys: []string{"password"}}))
		if err != nil {
			t.Fatal(err)
		}
		task := r.h.waitTask(t, resp.Msg.GetTask().GetId(), 30*time.Second, func(t *outpostv1.Task) bool {
			return t.GetState() == outpostv1.TaskState_TASK_STATE_FAILED || t.GetState() == outpostv1.TaskState_TASK_STATE_SUCCEEDED
		})
		if task.GetState() != outpostv1.TaskState_TASK_STATE_FAILED {
			t.Fatalf("tampered value: task %v", task.GetState())
		}
		s, err := c.CoreV1().Secrets(r.target).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Data["password"]) != second {
			t.Fatal("the tampered value changed the Secret")
		}
	})

	t.Run("no plaintext in the hub's database, logs, task results or audit log", func(t *testing.T) {
		plains := []string{first, second, "pw-never-written-77", "pw-tampered-58"}
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if b, err := os.ReadFile(r.h.db + suffix); err == nil {
				assertNoLeak(t, filepath.Base(r.h.db+suffix), b, plains...)
			}
		}
		assertNoLeak(t, "the hub's log", []byte(r.h.p.out.String()), plains...)
		assertNoLeak(t, "the agent's log", []byte(r.agent.out.String()), plains...)
		tasks, err := r.h.operator.ListTasks(ctx, connect.NewRequest(&outpostv1.ListTasksRequest{Environment: "prod", Limit: 500}))
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks.Msg.GetTasks()) < 4 {
			t.Fatalf("only %d tasks to search", len(tasks.Msg.GetTasks()))
		}
		for _, task := range tasks.Msg.GetTasks() {
			assertNoLeak(t, "task "+task.GetId(), []byte(task.String()), plains...)
		}
		var audit bytes.Buffer
		r.h.auditEvents(t, "", func(e *outpostv1.AuditEvent) { audit.WriteString(e.String()) })
		if !strings.Contains(audit.String(), "secret.set") {
			t.Fatal("the audit log has no secret.set event to search")
		}
		assertNoLeak(t, "the audit log", audit.Bytes(), plains...)
	})
}
