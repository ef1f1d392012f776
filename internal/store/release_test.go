package store

import (
	"errors"
	"testing"
	"time"
)

func TestPlanApply(t *testing.T) {
	cur := ReleaseRow{Release: Release{Name: "web", Kind: "manifests", Revision: 3, Sync: SyncInSync}}
	rev := ReleaseRevision{Release: "web", Kind: "manifests", Digest: "d3"}
	with := func(edit func(*ReleaseRow)) ReleaseRow {
		r := cur
		edit(&r)
		return r
	}
	tests := []struct {
		name   string
		cur    ReleaseRow
		exists bool
		digest string
		rev    ReleaseRevision
		want   ApplyAction
		err    error
	}{
		{"a new release gets its first revision", ReleaseRow{}, false, "", rev, ApplyRevision, nil},
		{"the same digest changes nothing", cur, true, "d3", rev, ApplyNothing, nil},
		{"the same digest retries a failed release", with(func(r *ReleaseRow) { r.Sync = SyncFailed }), true, "d3", rev, ApplyRetry, nil},
		{"the same digest re-applies a drifted release", with(func(r *ReleaseRow) { r.Sync = SyncDrifted }), true, "d3", rev, ApplyRetry, nil},
		{"the same digest waiting for approval changes nothing", with(func(r *ReleaseRow) { r.Sync = SyncAwaitingApproval }), true, "d3", rev, ApplyNothing, nil},
		{"another digest is a new revision", cur, true, "d2", rev, ApplyRevision, nil},
		{"another kind is refused", cur, true, "d2", ReleaseRevision{Release: "web", Kind: "helm", Digest: "d4"}, 0, ErrReleaseKindChanged},
		{"a release being deleted refuses applies", with(func(r *ReleaseRow) { r.DeleteRequested = true; r.Sync = SyncDeleting }), true, "d3", rev, 0, ErrReleaseDeleting},
		{"a release whose deletion failed still refuses applies", with(func(r *ReleaseRow) { r.DeleteRequested = true; r.Sync = SyncFailed }), true, "d3", rev, 0, ErrReleaseDeleting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanApply(tt.cur, tt.exists, tt.digest, tt.rev)
			if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
				t.Fatalf("PlanApply = %v, %v; want %v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSettleRelease(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	drift := []ObjectDrift{{Version: "v1", Kind: "ConfigMap", Name: "x"}}
	applying := ReleaseRow{Release: Release{Tenant: "acme", EnvironmentID: "e1", Name: "web", Revision: 2, AppliedRevision: 1,
		Sync: SyncPending, TaskID: "t2", Drift: drift, DriftCorrected: true, DriftAt: now}}
	deleting := applying
	deleting.DeleteRequested, deleting.Sync = true, SyncDeleting
	tests := []struct {
		name          string
		cur           ReleaseRow
		task          Task
		write, remove bool
		sync          ReleaseSync
		applied       int64
		desired       bool
	}{
		{"success applies the newest revision", applying, Task{ID: "t2", State: StateSucceeded}, true, false, SyncInSync, 2, true},
		{"a final failure fails the release", applying, Task{ID: "t2", State: StateFailed, Error: "boom"}, true, false, SyncFailed, 1, false},
		{"a cancellation fails the release", applying, Task{ID: "t2", State: StateCancelled}, true, false, SyncFailed, 1, false},
		{"a superseded task changes nothing", applying, Task{ID: "t1", State: StateSucceeded}, false, false, SyncPending, 1, false},
		{"a requeued task changes nothing", applying, Task{ID: "t2", State: StateQueued}, false, false, SyncPending, 1, false},
		{"success of the delete task removes the release", deleting, Task{ID: "t2", State: StateSucceeded}, false, true, SyncDeleting, 1, true},
		{"failure of the delete task fails the release", deleting, Task{ID: "t2", State: StateFailed}, true, false, SyncFailed, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := SettleRelease(tt.cur, tt.task, "prod", now)
			if c.Write != tt.write || c.Remove != tt.remove || c.Row.Sync != tt.sync || c.Row.AppliedRevision != tt.applied {
				t.Fatalf("SettleRelease = write %v remove %v sync %s applied %d", c.Write, c.Remove, c.Row.Sync, c.Row.AppliedRevision)
			}
			if got := c.Wakeup != nil && c.Wakeup.DesiredState; got != tt.desired {
				t.Fatalf("desired-state wake-up = %v, want %v", got, tt.desired)
			}
			if tt.sync == SyncInSync && (c.Row.Drift != nil || c.Row.DriftCorrected || !c.Row.DriftAt.IsZero()) {
				t.Fatalf("an applied revision keeps drift %+v", c.Row.Release)
			}
			if tt.sync == SyncFailed && c.Row.LastError == "" {
				t.Fatal("a failed release has no LastError")
			}
		})
	}
}

func TestRecordDriftRepeats(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	drift := []ObjectDrift{{Version: "v1", Kind: "ConfigMap", Name: "x", Fields: []string{"/data"}}}
	r := ReleaseRow{Release: Release{Name: "web", Revision: 1, AppliedRevision: 1, Sync: SyncInSync}}
	steps := []struct {
		name      string
		objects   []ObjectDrift
		corrected bool
		audited   bool
		sync      ReleaseSync
	}{
		{"an in-sync report of an in-sync release is not audited", nil, false, false, SyncInSync},
		{"a first drift is audited", drift, false, true, SyncDrifted},
		{"the same drift again is not", drift, false, false, SyncDrifted},
		{"every correction is audited", drift, true, true, SyncInSync},
		{"a correction repeated is audited too", drift, true, true, SyncInSync},
		{"back in sync after a correction is audited", nil, false, true, SyncInSync},
	}
	for _, st := range steps {
		c := RecordDrift(r, "prod", DriftParams{Release: "web", Revision: 1, Objects: st.objects, Corrected: st.corrected, Now: now})
		if (c.Event != nil) != st.audited || c.Row.Sync != st.sync || !c.Write {
			t.Fatalf("%s: event %v sync %s write %v", st.name, c.Event != nil, c.Row.Sync, c.Write)
		}
		r = c.Row
	}
	failed := RecordDrift(r, "prod", DriftParams{Release: "web", Revision: 1, Objects: drift, Now: now}).Row
	t.Run("a failed check keeps the drift last found and is audited once", func(t *testing.T) {
		c := RecordDrift(failed, "prod", DriftParams{Release: "web", Revision: 1, Error: "plan: backend unreachable", Now: now})
		if c.Row.Sync != SyncDrifted || !sameDrift(c.Row.Drift, drift) || c.Row.LastError != "plan: backend unreachable" {
			t.Fatalf("sync %s drift %v error %q; want still drifted with the error", c.Row.Sync, c.Row.Drift, c.Row.LastError)
		}
		if c.Event == nil || c.Event.Action != ActionReleaseDriftCheckFailed {
			t.Fatalf("event %v, want %s", c.Event, ActionReleaseDriftCheckFailed)
		}
		again := RecordDrift(c.Row, "prod", DriftParams{Release: "web", Revision: 1, Error: "plan: backend unreachable", Now: now})
		if again.Event != nil || again.Row.Sync != SyncDrifted {
			t.Fatalf("the same failure again: event %v sync %s; want no event, still drifted", again.Event, again.Row.Sync)
		}
	})
	t.Run("a failed check of an in-sync release does not call it in sync again", func(t *testing.T) {
		c := RecordDrift(r, "prod", DriftParams{Release: "web", Revision: 1, Error: "list refused", Now: now})
		if c.Row.LastError != "list refused" || c.Event == nil || c.Event.Action != ActionReleaseDriftCheckFailed {
			t.Fatalf("error %q event %v", c.Row.LastError, c.Event)
		}
	})
	pending := r
	pending.Sync, pending.Revision = SyncPending, 2
	if c := RecordDrift(pending, "prod", DriftParams{Release: "web", Revision: 1, Objects: drift, Now: now}); c.Row.Sync != SyncPending || c.Row.Drift == nil {
		t.Fatalf("a drift report of a release applying a newer revision: sync %s drift %v", c.Row.Sync, c.Row.Drift)
	}
}
