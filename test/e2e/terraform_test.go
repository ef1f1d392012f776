package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/tofutest"
)

// startTerraformRig is startKubeRig with an agent that runs terraform
// tasks: OpenTofu from hack/tofu.sh, state in the agent's namespace, a
// short fence so a killed apply's lock is taken over quickly, and drift
// checks every few seconds.
func startTerraformRig(t *testing.T) *kubeRig {
	t.Helper()
	tofu := tofutest.Binary(t, "terraform end-to-end tests")
	return startKubeRigWith(t, "", "--tofu", tofu, "--terraform-fence-duration", "3s", "--terraform-drift-interval", "3s")
}

// moduleFiles is a module of built-in resources only (no provider
// download): terraform_data keeps its input in state, a sensitive variable
// feeds a sensitive output, and sleep_seconds adds a local-exec provisioner
// that makes an apply last.
func moduleFiles(sleepSeconds int) map[string]string {
	files := map[string]string{
		"main.tf": `variable "size" {
  type = number
}

variable "password" {
  type      = string
  sensitive = true
}

resource "terraform_data" "db" {
  input = { size = var.size }
}

output "size" {
  value = terraform_data.db.output.size
}

output "dsn" {
  value     = "postgres://app:${var.password}@db:5432/app"
  sensitive = true
}
`,
	}
	if sleepSeconds > 0 {
		files["slow.tf"] = `resource "terraform_data" "migration" {
  input = var.size
  provisioner "local-exec" {
    command = "sleep ` + strconv.Itoa(sleepSeconds) + `"
  }
}
`
	}
	return files
}

// tarGzFiles packs files (name → content) as a module archive.
func tarGzFiles(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// terraformTask enqueues a terraform task and returns its ID.
func (r *kubeRig) terraformTask(t *testing.T, id string, spec taskspec.Terraform, maxAttempts int32) string {
	t.Helper()
	doc, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.h.operator.EnqueueTask(t.Context(), connect.NewRequest(&outpostv1.EnqueueTaskRequest{
		Id: id, Environment: "prod", Kind: taskspec.KindTerraform, Spec: doc, MaxAttempts: maxAttempts,
		ConflictKeys: []string{spec.ConflictKey()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runTerraform runs a terraform task to its end and returns its result.
func (r *kubeRig) runTerraform(t *testing.T, id string, spec taskspec.Terraform) taskspec.TerraformResult {
	t.Helper()
	r.terraformTask(t, id, spec, 3)
	r.h.waitTask(t, id, 3*time.Minute, hubtest.Terminal)
	return succeededResult[taskspec.TerraformResult](t, r.h, id)
}

// state returns the state document of workspace as JSON text, and
// whether its Secret exists.
func (r *kubeRig) state(t *testing.T, workspace string) (string, bool) {
	t.Helper()
	state, err := tofutest.ReadState(t.Context(), r.env.Client, r.agentNS, workspace)
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	return string(doc), true
}

// stateLocked reports whether the kubernetes backend's lock Lease of
// workspace has a holder (an unlock clears the holder, keeping the Lease).
func (r *kubeRig) stateLocked(t *testing.T, workspace string) bool {
	t.Helper()
	lease, err := r.env.Client.CoordinationV1().Leases(r.agentNS).Get(t.Context(), "lock-tfstate-default-"+workspace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != ""
}

// TestTerraformTasksEndToEnd drives terraform tasks through a real hub,
// agent, OpenTofu and kube-apiserver: apply with outputs, a re-apply that
// changes nothing, a changed variable, a refused archive, an agent killed
// mid-apply, destroy — with the sensitive variable's value nowhere.
func TestTerraformTasksEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent running OpenTofu")
	}
	r := startTerraformRig(t)
	const password = "tf-e2e-password-3c9f0a7e51"
	if _, err := r.env.Client.CoreV1().Secrets(r.agentNS).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-creds"},
		Data:       map[string][]byte{"password": []byte(password)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	top := t
	module := tarGzFiles(t, moduleFiles(0))
	// logs keeps the output of agent processes the test killed.
	var logs []string
	spec := func(size int) taskspec.Terraform {
		return taskspec.Terraform{
			Workspace:          "db",
			Archive:            module,
			Variables:          map[string]json.RawMessage{"size": json.RawMessage(strconv.Itoa(size))},
			SensitiveVariables: map[string]string{"password": "vault://k8s/db-creds/password"},
		}
	}

	first := r.runTerraform(t, "tf-apply-1", spec(1))
	t.Run("an apply creates the resources and returns the outputs, the sensitive one redacted", func(t *testing.T) {
		if !first.Changed || first.Plan.Add != 1 || first.Plan.Destroy != 0 {
			t.Fatalf("result %+v, want one resource added", first)
		}
		if got := string(first.Outputs["size"]); got != "1" {
			t.Fatalf("output size = %s, want 1", got)
		}
		if got := string(first.Outputs["dsn"]); got != `"[REDACTED]"` {
			t.Fatalf("output dsn = %s, want it redacted", got)
		}
	})
	t.Run("the state lives in a Secret of the agent's namespace", func(t *testing.T) {
		s, ok := r.state(t, "db")
		if !ok {
			t.Fatal("no state Secret tfstate-default-db")
		}
		if !strings.Contains(s, `"terraform_data"`) {
			t.Fatal("the state Secret does not hold the terraform_data resource")
		}
	})
	t.Run("applying the same module again changes nothing", func(t *testing.T) {
		again := r.runTerraform(t, "tf-apply-2", spec(1))
		if again.Changed || again.Plan.HasChanges || len(again.Plan.Resources) != 0 {
			t.Fatalf("result %+v, want no changes", again)
		}
	})
	t.Run("a changed variable updates the resource in place", func(t *testing.T) {
		changed := r.runTerraform(t, "tf-apply-3", spec(2))
		if !changed.Changed || changed.Plan.Change != 1 || changed.Plan.Add != 0 || changed.Plan.Destroy != 0 {
			t.Fatalf("result %+v, want one resource changed", changed)
		}
		if got := string(changed.Outputs["size"]); got != "2" {
			t.Fatalf("output size = %s, want 2", got)
		}
	})
	t.Run("a module archive that escapes its directory is refused without running anything", func(t *testing.T) {
		bad := spec(3)
		bad.Workspace = "evil"
		bad.Archive = tarGzFiles(t, map[string]string{"main.tf": "", "../../etc/evil.tf": "x"})
		id := r.terraformTask(t, "tf-evil", bad, 3)
		got := r.h.waitTask(t, id, time.Minute, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_FAILED || got.GetAttempt() != 1 || !strings.Contains(got.GetError(), "module archive refused") {
			t.Fatalf("task %v at attempt %d: %s; want failed at once with the archive refused", got.GetState(), got.GetAttempt(), got.GetError())
		}
		if _, ok := r.state(t, "evil"); ok {
			t.Fatal("a state Secret was written for the refused module")
		}
	})
	t.Run("an agent killed mid-apply leaves a lock the next attempt takes over", func(t *testing.T) {
		slow := spec(1)
		slow.Workspace = "slow"
		slow.Archive = tarGzFiles(t, moduleFiles(20))
		id := r.terraformTask(t, "tf-killed", slow, 5)
		eventually(t, 2*time.Minute, "the apply holds the state lock", func() bool {
			return r.stateLocked(t, "slow") && r.h.task(t, id).GetState() == outpostv1.TaskState_TASK_STATE_LEASED
		})
		// The provisioner's sleep runs; kill the agent in the middle of it.
		time.Sleep(2 * time.Second)
		r.agent.kill()
		logs = append(logs, r.agent.out.String())
		if !r.stateLocked(t, "slow") {
			t.Fatal("after the kill the state lock is not held; the test interrupted nothing")
		}
		// The new agent outlives this subtest: the ones after it need it.
		r.agent = r.startAgentIn(top, "")
		got := r.h.waitTask(t, id, 4*time.Minute, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED || got.GetAttempt() < 2 {
			t.Fatalf("task %v at attempt %d (%s), want succeeded on a later attempt", got.GetState(), got.GetAttempt(), got.GetError())
		}
		s, ok := r.state(t, "slow")
		if !ok || !strings.Contains(s, `"migration"`) {
			t.Fatal("the state after the retried attempt does not hold the slow resource")
		}
		if !strings.Contains(r.agent.out.String(), "force-unlocking it") {
			t.Fatal("the new agent did not log that it broke the abandoned state lock")
		}
		if r.stateLocked(t, "slow") {
			t.Fatal("the state is still locked after the retried attempt")
		}
	})
	t.Run("destroy removes every resource from the state", func(t *testing.T) {
		d := spec(2)
		d.Action = taskspec.TerraformDestroy
		res := r.runTerraform(t, "tf-destroy", d)
		if !res.Changed || res.Plan.Destroy != 1 {
			t.Fatalf("result %+v, want one resource destroyed", res)
		}
		s, ok := r.state(t, "db")
		if !ok {
			t.Fatal("the state Secret is gone; destroy keeps an empty state")
		}
		if strings.Contains(s, `"terraform_data"`) {
			t.Fatal("the state still holds the resource after destroy")
		}
	})
	t.Run("the sensitive value reaches no result, log, audit event or hub database", func(t *testing.T) {
		for _, id := range []string{"tf-apply-1", "tf-apply-2", "tf-apply-3", "tf-destroy", "tf-killed"} {
			if task := r.h.task(t, id); strings.Contains(task.String(), password) {
				t.Fatalf("task %s holds the password", id)
			}
		}
		for _, log := range append(logs, r.agent.out.String()) {
			if strings.Contains(log, password) {
				t.Fatal("the agent's log holds the password")
			}
		}
		r.h.auditEvents(t, "", func(e *outpostv1.AuditEvent) {
			if strings.Contains(e.String(), password) {
				t.Fatalf("audit event %s holds the password", e.GetAction())
			}
		})
		assertNotInDir(t, filepath.Dir(r.h.db), password)
	})
}

// releaseModule is a module for a terraform release: its volume is
// replaced whenever generation changes, a destroy the approval policy
// holds.
const releaseModule = `variable "size" {
  type = number
}

variable "generation" {
  type = number
}

variable "password" {
  type      = string
  sensitive = true
}

resource "terraform_data" "db" {
  input = { size = var.size }
}

resource "terraform_data" "volume" {
  triggers_replace = [var.generation]
  input            = "volume-${var.generation}"
}

output "size" {
  value = terraform_data.db.output.size
}

output "volume" {
  value = terraform_data.volume.output
}

output "dsn" {
  value     = "postgres://app:${var.password}@db:5432/app"
  sensitive = true
}
`

// writeTerraformRelease writes release "db" of the module with the given
// variables, approval required for destroys, in the default (detect) mode.
func writeTerraformRelease(t *testing.T, dir string, size, generation int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "module"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "module", "main.tf"), []byte(releaseModule), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `apiVersion: outpost.dev/v1
kind: Release
metadata:
  name: db
  environment: prod
spec:
  terraform:
    module: ./module
    approval: destroy
    variables:
      size: ` + strconv.Itoa(size) + `
      generation: ` + strconv.Itoa(generation) + `
    sensitiveVariables:
      password: vault://k8s/db-creds/password
`
	path := filepath.Join(dir, "release.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTerraformReleases keeps a terraform release through its life: the
// plan and outputs on the hub, drift found by the scheduled plan, a
// replacement held for approval and applied once approved, and deletion
// destroying what it made.
func TestTerraformReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent running OpenTofu")
	}
	r := startTerraformRig(t)
	const password = "tf-release-password-8d21be44f0"
	if _, err := r.env.Client.CoreV1().Secrets(r.agentNS).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-creds"},
		Data:       map[string][]byte{"password": []byte(password)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	r.cli(t, "", "release", "apply", "-f", writeTerraformRelease(t, dir, 1, 1), "--wait", "--timeout", "3m")
	t.Run("the release is applied in detect mode with its plan and outputs on the hub", func(t *testing.T) {
		rel := r.release(t, "db")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC || rel.GetAppliedRevision() != 1 || rel.GetMode() != outpostv1.ReleaseMode_RELEASE_MODE_DETECT {
			t.Fatalf("release %v at applied revision %d in mode %v (%s), want in sync at 1 in detect mode", rel.GetSync(), rel.GetAppliedRevision(), rel.GetMode(), rel.GetLastError())
		}
		rev := r.revision(t, "db", 1)
		if p := rev.GetPlan(); p.GetAdd() != 2 || p.GetDestroy() != 0 || len(p.GetResources()) != 2 {
			t.Fatalf("plan %v, want two resources added", p)
		}
		var outputs map[string]json.RawMessage
		if err := json.Unmarshal(rev.GetOutputs(), &outputs); err != nil {
			t.Fatalf("outputs %s: %v", rev.GetOutputs(), err)
		}
		if string(outputs["size"]) != "1" || string(outputs["volume"]) != `"volume-1"` || string(outputs["dsn"]) != `"[REDACTED]"` {
			t.Fatalf("outputs %s, want size 1, volume-1 and dsn redacted", rev.GetOutputs())
		}
		out := r.cli(t, "", "release", "get", "db", "--env", "prod")
		if !strings.Contains(out, "volume-1") {
			t.Fatalf("release get does not show the outputs:\n%s", out)
		}
	})
	t.Run("a changed state is found by the scheduled plan and reported, not corrected, in detect mode", func(t *testing.T) {
		err := tofutest.EditState(t.Context(), r.env.Client, r.agentNS, "db", func(state map[string]any) {
			if attrs := tofutest.Attributes(state, "terraform_data", "db"); attrs != nil {
				attrs["input"] = map[string]any{"value": map[string]any{"size": 9}, "type": []any{"object", map[string]any{"size": "number"}}}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "the release is reported drifted", func() bool {
			return r.release(t, "db").GetSync() == outpostv1.ReleaseSync_RELEASE_SYNC_DRIFTED
		})
		rel := r.release(t, "db")
		if len(rel.GetDrift()) != 1 || rel.GetDrift()[0].GetAddress() != "terraform_data.db" || rel.GetDriftCorrected() {
			t.Fatalf("drift %v (corrected %v), want terraform_data.db not corrected", rel.GetDrift(), rel.GetDriftCorrected())
		}
		if got := r.h.auditActions(t, "release.drift_detected")["db"]; got != 1 {
			t.Fatalf("%d release.drift_detected events for db, want 1 (one per episode)", got)
		}
	})
	t.Run("a plan that replaces a resource waits for approval and is applied once approved", func(t *testing.T) {
		out, err := runCLI(t, r.cliConfig, "", "release", "apply", "-f", writeTerraformRelease(t, dir, 1, 2), "--wait", "--timeout", "3m")
		if err == nil || !strings.Contains(out+err.Error(), "outpost release approve db") {
			t.Fatalf("apply --wait = %v:\n%s\nwant it to stop at the plan awaiting approval", err, out)
		}
		rel := r.release(t, "db")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL || rel.GetAppliedRevision() != 1 {
			t.Fatalf("release %v at applied revision %d, want awaiting approval with revision 1 applied", rel.GetSync(), rel.GetAppliedRevision())
		}
		held := r.revision(t, "db", 2).GetPlan()
		if held.GetDestroy() != 1 || !hasChange(held, "terraform_data.volume", "replace") {
			t.Fatalf("held plan %v, want terraform_data.volume replaced", held)
		}
		if s, _ := r.state(t, "db"); !strings.Contains(s, "volume-1") {
			t.Fatal("the held plan changed the state")
		}
		r.cli(t, "", "release", "approve", "db", "--env", "prod", "--yes", "--wait", "--timeout", "3m")
		rel = r.release(t, "db")
		if rel.GetSync() != outpostv1.ReleaseSync_RELEASE_SYNC_IN_SYNC || rel.GetAppliedRevision() != 2 {
			t.Fatalf("release %v at applied revision %d (%s), want in sync at 2", rel.GetSync(), rel.GetAppliedRevision(), rel.GetLastError())
		}
		if s, _ := r.state(t, "db"); !strings.Contains(s, "volume-2") {
			t.Fatal("the approved plan did not replace the volume")
		}
		for _, action := range []string{"release.approval_required", "release.approved"} {
			if r.h.auditActions(t, action)["db"] != 1 {
				t.Fatalf("no %s audit event for db", action)
			}
		}
	})
	t.Run("deleting the release destroys its resources", func(t *testing.T) {
		r.cli(t, "", "release", "delete", "db", "--env", "prod", "--yes", "--wait", "--timeout", "3m")
		if _, err := r.h.operator.GetRelease(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRequest{Environment: "prod", Name: "db"})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("get release after delete: %v, want NotFound", err)
		}
		if s, ok := r.state(t, "db"); ok && strings.Contains(s, `"terraform_data"`) {
			t.Fatal("the state still holds resources after the release was deleted")
		}
	})
	t.Run("the sensitive value reaches no revision, log, audit event or hub database", func(t *testing.T) {
		if strings.Contains(r.agent.out.String(), password) {
			t.Fatal("the agent's log holds the password")
		}
		r.h.auditEvents(t, "", func(e *outpostv1.AuditEvent) {
			if strings.Contains(e.String(), password) {
				t.Fatalf("audit event %s holds the password", e.GetAction())
			}
		})
		assertNotInDir(t, filepath.Dir(r.h.db), password)
	})
}

func (r *kubeRig) revision(t *testing.T, name string, rev int64) *outpostv1.ReleaseRevision {
	t.Helper()
	resp, err := r.h.operator.GetReleaseRevision(t.Context(), connect.NewRequest(&outpostv1.GetReleaseRevisionRequest{Environment: "prod", Name: name, Revision: rev}))
	if err != nil {
		t.Fatalf("get revision %d of %s: %v", rev, name, err)
	}
	return resp.Msg.GetRevision()
}

func hasChange(p *outpostv1.PlanSummary, address, action string) bool {
	for _, c := range p.GetResources() {
		if c.GetAddress() == address && c.GetAction() == action {
			return true
		}
	}
	return false
}
