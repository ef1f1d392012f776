package manifests_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

func revisions(ns string) (rev1, rev2 taskspec.Manifests) {
	rev1 = taskspec.Manifests{Release: "web", Namespace: ns, Bundle: join(
		configMap("a", "", map[string]string{"v": "1"}), configMap("b", "", nil), configMap("c", "", nil), service, deployment)}
	rev2 = taskspec.Manifests{Release: "web", Namespace: ns, Bundle: join(
		configMap("a", "", map[string]string{"v": "2"}), configMap("b", "", nil), configMap("d", "", nil), service)}
	return rev1, rev2
}

func TestRetryAfterCrashReportsAsUninterrupted(t *testing.T) {
	// The reference: both revisions run without interruption.
	ref := leastPrivilege(t)
	refEx := ref.executor(t)
	r1, r2 := revisions(ref.target)
	want1 := execute(t, refEx, task(t, "r1", 1, r1))
	want2 := execute(t, refEx, task(t, "r2", 1, r2))

	s := leastPrivilege(t)
	c1, c2 := revisions(s.target)
	t.Run("an attempt cancelled after two applies is finished by the next with the same result", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var applies atomic.Int64
		crashing := s.executor(t, withHook(func(req *http.Request) error {
			if realApply(req) && applies.Add(1) > 2 {
				cancel()
				return context.Canceled
			}
			return nil
		}))
		_, err := crashing.Execute(ctx, task(t, "c1", 1, c1))
		if err == nil || executor.IsTerminal(err) {
			t.Fatalf("interrupted attempt: %v, want a retryable error", err)
		}
		if applies.Load() < 2 {
			t.Fatalf("%d applies before the crash, want the crash mid-apply", applies.Load())
		}
		got := execute(t, s.executor(t), task(t, "c1", 2, c1))
		wantOutcomes(t, got, outcomes(want1))
		if got.Counts != want1.Counts || got.Revision != want1.Revision {
			t.Fatalf("retry %+v, want %+v", got, want1)
		}
	})
	t.Run("an attempt that pruned but did not commit is finished by the next with the same result", func(t *testing.T) {
		var puts atomic.Int64
		crashing := s.executor(t, withHook(func(req *http.Request) error {
			// The first write of the inventory is the claim, the second
			// the commit: fail that one, after apply and prune.
			if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/secrets/") && puts.Add(1) == 2 {
				return errors.New("simulated crash before the commit")
			}
			return nil
		}))
		_, err := crashing.Execute(t.Context(), task(t, "c2", 1, c2))
		if err == nil {
			t.Fatal("the interrupted attempt succeeded")
		}
		if configMapExists(t, s.target, "c") {
			t.Fatal("the interrupted attempt did not prune before its commit failed")
		}
		got := execute(t, s.executor(t), task(t, "c2", 2, c2))
		wantOutcomes(t, got, outcomes(want2))
		if got.Counts != want2.Counts || got.Revision != want2.Revision || got.Counts.Pruned != 2 {
			t.Fatalf("retry %+v, want %+v", got, want2)
		}
	})
}

func TestStaleAttemptCannotCommit(t *testing.T) {
	s := leastPrivilege(t)
	rev1, _ := revisions(s.target)
	release := make(chan struct{})
	blocked := make(chan struct{})
	var once atomic.Bool
	slow := s.executor(t, withHook(func(req *http.Request) error {
		if realApply(req) && once.CompareAndSwap(false, true) {
			close(blocked)
			select {
			case <-release:
			case <-req.Context().Done():
				return req.Context().Err()
			}
		}
		return nil
	}))
	done := make(chan error, 1)
	go func() {
		_, err := slow.Execute(t.Context(), task(t, "s1", 1, rev1))
		done <- err
	}()
	select {
	case <-blocked:
	case err := <-done:
		t.Fatalf("attempt 1 ended before its first apply: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("attempt 1 never applied")
	}
	// Attempt 1's lease expired; attempt 2 runs to the end.
	newer := execute(t, s.executor(t), task(t, "s1", 2, rev1))
	close(release)
	err := <-done
	t.Run("the older attempt finishing late does not commit", func(t *testing.T) {
		wantTerminal(t, err, manifests.ErrStaleAttempt, "attempt 1 of task s1")
	})
	t.Run("the newer attempt's result stands", func(t *testing.T) {
		again := execute(t, s.executor(t), task(t, "s1", 2, rev1))
		if fmt.Sprint(outcomes(again)) != fmt.Sprint(outcomes(newer)) {
			t.Fatalf("recorded %v, want %v", outcomes(again), outcomes(newer))
		}
	})
	t.Run("an older attempt starting after the commit stops before writing", func(t *testing.T) {
		_, err := s.executor(t).Execute(t.Context(), task(t, "s1", 1, rev1))
		wantTerminal(t, err, manifests.ErrStaleAttempt, "attempt 2 already committed")
	})
}

func TestArtifactBundleOfSeveralMiB(t *testing.T) {
	s := leastPrivilege(t)
	ex := s.executor(t)
	var docs []string
	for i := range 80 {
		docs = append(docs, configMap(fmt.Sprintf("blob-%02d", i), "", map[string]string{"data": strings.Repeat(fmt.Sprintf("%02d", i), 25<<10)}))
	}
	data := []byte(join(docs...))
	if len(data) < 3<<20 {
		t.Fatalf("bundle of %d bytes, want several MiB", len(data))
	}
	digest := digestOf(data)
	spec := taskspec.Manifests{Release: "blobs", Namespace: s.target, Artifact: digest}
	t.Run("a bundle artifact is fetched, verified and applied", func(t *testing.T) {
		tk := task(t, "art", 1, spec)
		tk.Artifacts, tk.Fetcher = []string{digest}, fakeFetcher{digest: data}
		res := execute(t, ex, tk)
		if res.Counts.Created != 80 || !configMapExists(t, s.target, "blob-79") {
			t.Fatalf("counts %+v", res.Counts)
		}
	})
	t.Run("an artifact the task does not declare is refused", func(t *testing.T) {
		tk := task(t, "art-undeclared", 1, spec)
		tk.Fetcher = fakeFetcher{digest: data}
		_, err := ex.Execute(t.Context(), tk)
		wantTerminal(t, err, manifests.ErrArtifact, "is not among the task's artifacts")
	})
	t.Run("content that does not match the digest is refused", func(t *testing.T) {
		tk := task(t, "art-corrupt", 1, spec)
		tampered := append([]byte(nil), data...)
		tampered[len(tampered)-3] = 'X'
		tk.Artifacts, tk.Fetcher = []string{digest}, fakeFetcher{digest: tampered}
		_, err := ex.Execute(t.Context(), tk)
		if !errors.Is(err, manifests.ErrArtifact) || !strings.Contains(err.Error(), "hashes to") {
			t.Fatalf("error %v, want ErrArtifact from the digest check", err)
		}
	})
}
