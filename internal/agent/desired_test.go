package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
)

func TestBoundFieldsFitsTheHubsLimits(t *testing.T) {
	t.Run("a short list passes unchanged", func(t *testing.T) {
		got := boundFields([]string{"/spec/replicas", "/metadata/labels/app"})
		if len(got) != 2 || got[0] != "/spec/replicas" {
			t.Fatalf("boundFields = %v", got)
		}
	})
	t.Run("a long list ends with a count of the rest", func(t *testing.T) {
		var many []string
		for i := range 100 {
			many = append(many, fmt.Sprintf("/data/k%d", i))
		}
		got := boundFields(many)
		if len(got) != maxDriftFields || got[maxDriftFields-1] != "(and 37 more fields)" {
			t.Fatalf("boundFields kept %d, last %q", len(got), got[len(got)-1])
		}
	})
	t.Run("a long path is shortened", func(t *testing.T) {
		got := boundFields([]string{"/" + strings.Repeat("a", 2000)})
		if len(got[0]) > maxDriftFieldLen || !strings.HasSuffix(got[0], "…") {
			t.Fatalf("path of %d bytes", len(got[0]))
		}
	})
}

// fakeDesired records what the agent hands the reconciler or the drift
// checker.
type fakeDesired[R any] struct {
	sets      [][]R
	forgotten []string
}

func (f *fakeDesired[R]) SetDesired(rels []R) { f.sets = append(f.sets, rels) }
func (f *fakeDesired[R]) Forget(name string)  { f.forgotten = append(f.forgotten, name) }

// nopExecutor stands for the executors; these tests run no task.
type nopExecutor struct{}

func (nopExecutor) Execute(context.Context, executor.Task) (json.RawMessage, error) {
	return nil, errors.New("not run in these tests")
}

func newDesiredAgent(t *testing.T, tf TerraformDesired) (*Agent, *fakeDesired[reconcile.Release]) {
	t.Helper()
	rec := &fakeDesired[reconcile.Release]{}
	a, err := New(Options{
		HubURL:      "https://hub.invalid",
		Identity:    FileIdentity{Path: filepath.Join(t.TempDir(), "identity.json")},
		Executors:   map[string]executor.Executor{taskspec.KindTerraform: nopExecutor{}},
		NewRedactor: func() Redactor { return redact.New() },
		Desired:     rec,
		Terraform:   tf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, rec
}

func desiredState(t *testing.T) *outpostv1.GetDesiredStateResponse {
	t.Helper()
	manifests, err := json.Marshal(taskspec.Manifests{Release: "web", Bundle: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"})
	if err != nil {
		t.Fatal(err)
	}
	tf := []byte(`{"action":"apply","workspace":"db","url":"https://modules.example/db.tar.gz"}`)
	return &outpostv1.GetDesiredStateResponse{Releases: []*outpostv1.DesiredRelease{
		{Name: "web", TaskId: "t-web", Revision: &outpostv1.ReleaseRevision{Revision: 3, Kind: taskspec.KindManifests, Spec: manifests}},
		{Name: "db", TaskId: "t-db", Revision: &outpostv1.ReleaseRevision{Revision: 2, Kind: taskspec.KindTerraform, Spec: tf, Artifacts: []string{"sha256:" + strings.Repeat("a", 64)}}},
		{Name: "cache", TaskId: "t-cache", Revision: &outpostv1.ReleaseRevision{Revision: 1, Kind: taskspec.KindTerraform, Spec: tf, Mode: outpostv1.ReleaseMode_RELEASE_MODE_CORRECT}},
	}}
}

func TestTerraformReleasesGoToTheDriftChecker(t *testing.T) {
	t.Run("terraform releases go to the drift checker and the others to the reconciler", func(t *testing.T) {
		tf := &fakeDesired[tfdrift.Release]{}
		a, rec := newDesiredAgent(t, tf)
		if err := a.applyDesired(t.Context(), desiredState(t), false); err != nil {
			t.Fatal(err)
		}
		if len(rec.sets) != 1 || len(rec.sets[0]) != 1 || rec.sets[0][0].Name != "web" {
			t.Fatalf("reconciler got %+v, want release web only", rec.sets)
		}
		if len(tf.sets) != 1 || len(tf.sets[0]) != 2 {
			t.Fatalf("drift checker got %+v, want releases db and cache", tf.sets)
		}
		db, cache := tf.sets[0][0], tf.sets[0][1]
		if db.Name != "db" || db.Revision != 2 || db.TaskID != "t-db" || db.Mode != reconcile.ModeDetect || len(db.Artifacts) != 1 || db.Fetcher == nil || string(db.Spec) != string(desiredState(t).GetReleases()[1].GetRevision().GetSpec()) {
			t.Errorf("release db = %+v, want revision 2 of task t-db in the detect mode with its artifact and a fetcher", db)
		}
		if cache.Name != "cache" || cache.Mode != reconcile.ModeCorrect {
			t.Errorf("release cache = %+v, want the correct mode the hub set", cache)
		}
	})
	t.Run("without a drift checker terraform releases are left out and the others still reconciled", func(t *testing.T) {
		a, rec := newDesiredAgent(t, nil)
		if err := a.applyDesired(t.Context(), desiredState(t), false); err != nil {
			t.Fatal(err)
		}
		if len(rec.sets) != 1 || len(rec.sets[0]) != 1 || rec.sets[0][0].Name != "web" {
			t.Fatalf("reconciler got %+v, want release web only", rec.sets)
		}
	})
}

func TestTerraformDestroyForgetsTheRelease(t *testing.T) {
	spec := func(action string) []byte {
		return []byte(`{"action":"` + action + `","workspace":"db","url":"https://modules.example/db.tar.gz"}`)
	}
	tests := []struct {
		name string
		task *outpostv1.Task
		want []string
	}{
		{"a destroy makes the drift checker forget the release first", &outpostv1.Task{Kind: taskspec.KindTerraform, Spec: spec("destroy"), ConflictKeys: []string{"release/db", "tf/db"}}, []string{"db"}},
		{"an apply keeps it", &outpostv1.Task{Kind: taskspec.KindTerraform, Spec: spec("apply"), ConflictKeys: []string{"release/db", "tf/db"}}, nil},
		{"a destroy outside a release forgets nothing", &outpostv1.Task{Kind: taskspec.KindTerraform, Spec: spec("destroy"), ConflictKeys: []string{"tf/db"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := &fakeDesired[tfdrift.Release]{}
			a, rec := newDesiredAgent(t, tf)
			a.forgetRemoved(tt.task)
			if !slices.Equal(tf.forgotten, tt.want) {
				t.Fatalf("drift checker forgot %v, want %v", tf.forgotten, tt.want)
			}
			if len(rec.forgotten) != 0 {
				t.Fatalf("reconciler forgot %v, want nothing", rec.forgotten)
			}
		})
	}
	t.Run("a helm uninstall still makes the reconciler forget the release", func(t *testing.T) {
		tf := &fakeDesired[tfdrift.Release]{}
		a, rec := newDesiredAgent(t, tf)
		a.forgetRemoved(&outpostv1.Task{Kind: taskspec.KindHelm, Spec: []byte(`{"action":"uninstall","namespace":"shop","release":"shop"}`), ConflictKeys: []string{"release/shop"}})
		if !slices.Equal(rec.forgotten, []string{"shop"}) || len(tf.forgotten) != 0 {
			t.Fatalf("reconciler forgot %v, checker %v; want shop by the reconciler", rec.forgotten, tf.forgotten)
		}
	})
}

func TestBoundKeepsReportsWithinTheHubsLimits(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"a short text passes unchanged", "tofu: plan failed", 4096, "tofu: plan failed"},
		{"a long text is cut and marked", strings.Repeat("e", 5000), 4096, strings.Repeat("e", 4096-len("…")) + "…"},
		{"a cut never splits a character", strings.Repeat("é", 10), 8, "éé…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bound(tt.in, tt.n)
			if got != tt.want || len(got) > tt.n {
				t.Fatalf("bound = %q (%d bytes), want %q", got, len(got), tt.want)
			}
		})
	}
}
