package terraform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationclientv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/ptr"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/terraform"
)

// waiting has a resource whose creation lasts while its CLI lives, for up
// to ticks fifths of a second, and ends as soon as the CLI is gone (so a
// killed run leaves no process behind).
const waiting = `
variable "ticks" {
  type = number
}

resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "i=0; while [ $i -lt ${var.ticks} ] && kill -0 $PPID 2>/dev/null; do sleep 0.2; i=$((i+1)); done"
  }
}
`

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// applyLocked reports whether the backend's state lock of the workspace is
// held by an apply.
func (a *agentFixture) applyLocked(t *testing.T, workspace string) bool {
	t.Helper()
	l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), "lock-tfstate-default-"+workspace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Operation string }
	_ = json.Unmarshal([]byte(l.Annotations["app.terraform.io/lock-info"]), &info)
	return l.Spec.HolderIdentity != nil && info.Operation == "OperationTypeApply"
}

// checkReleased checks that the fence Lease name was released by a run of
// this host: no holder, and the host annotation left for the next one.
func (a *agentFixture) checkReleased(t *testing.T, name string) {
	t.Helper()
	l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("fence after the run: %v", err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil || l.Annotations["outpost.dev/holder-host"] != host {
		t.Fatalf("fence after the run: holder %v, host %q, want it released by host %q", l.Spec.HolderIdentity, l.Annotations["outpost.dev/holder-host"], host)
	}
}

func taskSpec(t *testing.T, spec map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestExecuteFence(t *testing.T) {
	a := newAgentFixture(t)
	mod := tarGz(t, entry{name: "main.tf", body: module})

	t.Run("a run that waits for a live fence until its context ends fails retryably and runs nothing", func(t *testing.T) {
		_, err := a.env.Client.CoordinationV1().Leases(a.ns).Create(t.Context(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "outpost-tf-live"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To("agent-1/t9"),
				LeaseDurationSeconds: ptr.To[int32](3600),
				RenewTime:            ptr.To(metav1.NowMicro()),
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := terraform.New(a.options(t, "agent-0", 0))
		if err != nil {
			t.Fatal(err)
		}
		raw := taskSpec(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "live"}))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err = ex.Execute(ctx, executor.Task{ID: "t1", Spec: raw})
		if !errors.Is(err, terraform.ErrFenced) || executor.IsTerminal(err) || !strings.Contains(err.Error(), "agent-1/t9") {
			t.Fatalf("error = %v, want a retryable ErrFenced naming the holder", err)
		}
		if waited := time.Since(start); waited < 2*time.Second {
			t.Fatalf("the run gave up after %s, want it to wait until its context ended", waited)
		}
		if _, err := a.env.Client.CoreV1().Secrets(a.ns).Get(t.Context(), "tfstate-default-live", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("state Secret: %v, want none: the CLI ran", err)
		}
		l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), "outpost-tf-live", metav1.GetOptions{})
		if err != nil || *l.Spec.HolderIdentity != "agent-1/t9" {
			t.Fatalf("fence after the refusal = %v, %v, want it still the other run's", l, err)
		}
	})
	t.Run("a run waits for a busy fence and runs once it is released", func(t *testing.T) {
		l, err := a.env.Client.CoordinationV1().Leases(a.ns).Create(t.Context(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "outpost-tf-busy"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To("agent-1/drift"),
				LeaseDurationSeconds: ptr.To[int32](1),
				RenewTime:            ptr.To(metav1.NowMicro()),
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The other run renews its one-second fence for three seconds,
		// then releases it.
		const held = 3 * time.Second
		released := make(chan error, 1)
		go func() {
			leases := a.env.Client.CoordinationV1().Leases(a.ns)
			end := time.Now().Add(held)
			for time.Now().Before(end) {
				time.Sleep(200 * time.Millisecond)
				l.Spec.RenewTime = ptr.To(metav1.NowMicro())
				if l, err = leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
					released <- err
					return
				}
			}
			l.Spec.HolderIdentity = nil
			_, err := leases.Update(context.Background(), l, metav1.UpdateOptions{})
			released <- err
		}()
		var logs bytes.Buffer
		opts := a.options(t, "agent-0", 0)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		ex, err := terraform.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		raw := taskSpec(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "busy"}))
		start := time.Now()
		if _, err := ex.Execute(t.Context(), executor.Task{ID: "t1", Spec: raw}); err != nil {
			t.Fatalf("the run failed while the fence was busy: %v", err)
		}
		if err := <-released; err != nil {
			t.Fatalf("the other run's fence: %v", err)
		}
		if waited := time.Since(start); waited < held {
			t.Fatalf("the run ended after %s, before the other run released the fence", waited)
		}
		if n := strings.Count(logs.String(), "waiting for its holder"); n != 1 || !strings.Contains(logs.String(), "holder=agent-1/drift") {
			t.Fatalf("logs say %d times that the run waits, want once naming the holder:\n%s", n, logs.String())
		}
		a.checkReleased(t, "outpost-tf-busy")
	})
	t.Run("an expired fence is taken over and released after the run", func(t *testing.T) {
		_, err := a.env.Client.CoordinationV1().Leases(a.ns).Create(t.Context(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "outpost-tf-stale"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To("agent-1/t9"),
				LeaseDurationSeconds: ptr.To[int32](30),
				RenewTime:            ptr.To(metav1.NewMicroTime(time.Now().Add(-time.Hour))),
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := terraform.New(a.options(t, "agent-0", 0))
		if err != nil {
			t.Fatal(err)
		}
		raw := taskSpec(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "stale"}))
		if _, err := ex.Execute(t.Context(), executor.Task{ID: "t1", Spec: raw}); err != nil {
			t.Fatal(err)
		}
		a.checkReleased(t, "outpost-tf-stale")
	})
	t.Run("a state lock another host took is not broken", func(t *testing.T) {
		// As alice's tofu on her laptop locks the state: the lock Lease
		// the backend would write.
		info := `{"ID":"0b6f-alice","Operation":"OperationTypeApply","Who":"alice@laptop","Version":"1.10.0","Created":"2020-01-02T03:04:05.123456Z","Path":""}`
		_, err := a.env.Client.CoordinationV1().Leases(a.ns).Create(t.Context(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        "lock-tfstate-default-foreign",
				Labels:      map[string]string{"app.kubernetes.io/managed-by": "terraform", "tfstate": "true", "tfstateSecretSuffix": "foreign", "tfstateWorkspace": "default"},
				Annotations: map[string]string{"app.terraform.io/lock-info": info},
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("0b6f-alice")},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		opts := a.options(t, "agent-0", 0)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		ex, err := terraform.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		raw := taskSpec(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "foreign"}))
		_, err = ex.Execute(t.Context(), executor.Task{ID: "t1", Spec: raw})
		if !errors.Is(err, terraform.ErrStateLocked) || executor.IsTerminal(err) ||
			!strings.Contains(err.Error(), "locked by alice@laptop (OperationTypeApply since 2020-01-02T03:04:05Z); not an Outpost run, so it is not broken") ||
			!strings.Contains(err.Error(), "tofu force-unlock") {
			t.Fatalf("error = %v, want a retryable ErrStateLocked naming alice's lock", err)
		}
		if strings.Contains(logs.String(), "force-unlocking") {
			t.Fatalf("the foreign lock was broken:\n%s", logs.String())
		}
		l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), "lock-tfstate-default-foreign", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "0b6f-alice" {
			t.Fatalf("alice's lock after the run = %v, %v, want it still hers", l, err)
		}
		a.checkReleased(t, "outpost-tf-foreign")
	})
	lose := []struct {
		name   string
		lose   func(t *testing.T, fail *atomic.Bool, lease string)
		reason string
	}{
		{"a run whose fence is deleted stops its CLI and fails retryably", func(t *testing.T, _ *atomic.Bool, lease string) {
			if err := a.env.Client.CoordinationV1().Leases(a.ns).Delete(t.Context(), lease, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "was deleted"},
		{"a run whose fence is taken stops its CLI and fails retryably", func(t *testing.T, _ *atomic.Bool, lease string) {
			l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), lease, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			l.Spec.HolderIdentity = ptr.To("agent-thief/t7")
			if _, err := a.env.Client.CoordinationV1().Leases(a.ns).Update(t.Context(), l, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, `held by "agent-thief/t7"`},
		{"a run that cannot renew its fence for two thirds of its duration stops its CLI", func(_ *testing.T, fail *atomic.Bool, _ string) {
			fail.Store(true)
		}, "no renewal of Lease"},
	}
	for i, tt := range lose {
		t.Run(tt.name, func(t *testing.T) {
			fail := new(atomic.Bool)
			opts := a.options(t, "agent-0", 2*time.Second)
			opts.Kube = failingLeases{Interface: opts.Kube, fail: fail}
			ex, err := terraform.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ws := fmt.Sprintf("lost-%d", i)
			slow := tarGz(t, entry{name: "main.tf", body: waiting})
			raw := taskSpec(t, spec(slow, map[string]any{"ticks": 1500}, map[string]any{"workspace": ws}))
			done := make(chan error, 1)
			go func() {
				_, err := ex.Execute(t.Context(), executor.Task{ID: "t-lost", Spec: raw})
				done <- err
			}()
			waitFor(t, "the apply to hold the state lock", func() bool { return a.applyLocked(t, ws) })
			tt.lose(t, fail, "outpost-tf-"+ws)
			var runErr error
			select {
			case runErr = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the run went on after its fence was lost")
			}
			if !errors.Is(runErr, terraform.ErrFenceLost) || executor.IsTerminal(runErr) || !strings.Contains(runErr.Error(), "fencing lost") || !strings.Contains(runErr.Error(), tt.reason) {
				t.Fatalf("error = %v, want a retryable ErrFenceLost saying %q", runErr, tt.reason)
			}
			if left, _ := os.ReadDir(opts.WorkRoot); len(left) != 0 {
				t.Fatalf("the working directory was not removed: %v", left)
			}
		})
	}
}

// failingLeases is a client whose Lease updates fail while fail is set, as
// when the API server is out of reach.
type failingLeases struct {
	kubernetes.Interface
	fail *atomic.Bool
}

func (f failingLeases) CoordinationV1() coordinationclientv1.CoordinationV1Interface {
	return failingCoordination{CoordinationV1Interface: f.Interface.CoordinationV1(), fail: f.fail}
}

type failingCoordination struct {
	coordinationclientv1.CoordinationV1Interface
	fail *atomic.Bool
}

func (f failingCoordination) Leases(namespace string) coordinationclientv1.LeaseInterface {
	return failingLeaseClient{LeaseInterface: f.CoordinationV1Interface.Leases(namespace), fail: f.fail}
}

type failingLeaseClient struct {
	coordinationclientv1.LeaseInterface
	fail *atomic.Bool
}

func (f failingLeaseClient) Update(ctx context.Context, l *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if f.fail.Load() {
		return nil, errors.New("dial tcp: connection refused (injected)")
	}
	return f.LeaseInterface.Update(ctx, l, opts)
}

// TestExecuteAfterKill kills an agent (this test binary, re-executed as a
// child) with SIGKILL in the middle of an apply, which leaves the state
// locked, and checks that the next attempt elsewhere waits out the dead
// run's fence, breaks the lock and completes.
func TestExecuteAfterKill(t *testing.T) {
	a := newAgentFixture(t)
	tofu := tofuPath(t)
	mod := tarGz(t, entry{name: "main.tf", body: waiting})
	childRoot := t.TempDir()
	cfg, err := json.Marshal(childConfig{
		Tofu: tofu, Kubeconfig: a.kubeconfig, Namespace: a.ns, Holder: "agent-child", WorkRoot: childRoot,
		Spec: taskSpec(t, spec(mod, map[string]any{"ticks": 1500}, map[string]any{"workspace": "killed"})),
	})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.CommandContext(t.Context(), self)
	child.Env = append(os.Environ(), childEnv+"="+string(cfg))
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = child.Wait()
		close(exited)
	}()
	waitFor(t, "the child's apply to hold the state lock", func() bool {
		select {
		case <-exited:
			t.Fatalf("the child ended before its apply: %s", childOut.String())
		default:
		}
		return a.applyLocked(t, "killed")
	})
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !a.applyLocked(t, "killed") {
		t.Fatal("the killed apply left no state lock; the test proves nothing")
	}

	var logs bytes.Buffer
	opts := a.options(t, "agent-parent", 2*time.Second)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ex, err := terraform.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	raw := taskSpec(t, spec(mod, map[string]any{"ticks": 0}, map[string]any{"workspace": "killed"}))
	// The next attempt waits out the dead run's fence.
	out, err := ex.Execute(t.Context(), executor.Task{ID: "t2", Spec: raw, Attempt: 2})
	if err != nil {
		t.Fatalf("the next attempt failed: %v\nlogs: %s", err, logs.String())
	}
	var res struct {
		Changed bool
		Plan    struct{ Add int }
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Plan.Add != 1 {
		t.Fatalf("result = %s, want the resource created", out)
	}
	if !strings.Contains(logs.String(), "force-unlocking") || !strings.Contains(logs.String(), "lock_operation=OperationTypeApply") {
		t.Fatalf("logs lack the broken lock:\n%s", logs.String())
	}
	if _, err := a.env.Client.CoreV1().Secrets(a.ns).Get(t.Context(), "tfstate-default-killed", metav1.GetOptions{}); err != nil {
		t.Fatalf("state Secret: %v", err)
	}
	if a.applyLocked(t, "killed") {
		t.Fatal("the state is still locked after the run")
	}
	// The child ran on this host, which the fence it left names.
	if !strings.Contains(logs.String(), "taken over after it expired") || !strings.Contains(logs.String(), "holder=agent-child/child") {
		t.Fatalf("logs lack the fence taken over from the child:\n%s", logs.String())
	}
	a.checkReleased(t, "outpost-tf-killed")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	again, err := ex.Execute(ctx, executor.Task{ID: "t3", Spec: raw})
	if err != nil || !strings.Contains(string(again), `"has_changes":false`) {
		t.Fatalf("a further run = %s, %v, want nothing left to do", again, err)
	}
}

// TestExecuteCancelledKeepsFence cancels a run in the middle of an apply
// whose CLI goes on after its interrupt, as OpenTofu does while it
// finishes its in-flight operations and saves state: the fence must stay
// the run's, renewed, until the CLI has exited, and the CLI must be killed
// well before the fence could expire.
func TestExecuteCancelledKeepsFence(t *testing.T) {
	a := newAgentFixture(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	// The apply ignores its interrupt for ten seconds; init and plan are
	// the real CLI's.
	wrapper := filepath.Join(dir, "tofu")
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = apply ]; then
  trap '' INT
  : > %q
  i=0; while [ $i -lt 100 ]; do /bin/sleep 0.1; i=$((i+1)); done
fi
exec %q "$@"
`, started, tofuPath(t))
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	const d = 2 * time.Second
	opts := a.options(t, "agent-0", d)
	opts.TofuPath = wrapper
	ex, err := terraform.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mod := tarGz(t, entry{name: "main.tf", body: module})
	raw := taskSpec(t, spec(mod, map[string]any{"v": "one"}, map[string]any{"workspace": "cancelled"}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := ex.Execute(ctx, executor.Task{ID: "t-cancel", Spec: raw})
		done <- err
	}()
	waitFor(t, "the apply to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	cancel()
	cancelled := time.Now()
	var runErr error
	for ended := false; !ended; {
		select {
		case runErr = <-done:
			ended = true
			continue
		case <-time.After(100 * time.Millisecond):
		}
		l, err := a.env.Client.CoordinationV1().Leases(a.ns).Get(t.Context(), "outpost-tf-cancelled", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "agent-0/t-cancel" {
			// Released: only after the CLI exited, so Execute returns now.
			continue
		}
		if !time.Now().Before(l.Spec.RenewTime.Add(d)) {
			t.Fatalf("the fence expired %s after the cancel while the CLI still ran", time.Since(cancelled))
		}
	}
	if elapsed := time.Since(cancelled); elapsed > d {
		t.Fatalf("the run returned %s after its cancel, want its CLI killed within %s", elapsed, d/6)
	}
	if !errors.Is(runErr, context.Canceled) || executor.IsTerminal(runErr) {
		t.Fatalf("error = %v, want a retryable cancellation", runErr)
	}
}
