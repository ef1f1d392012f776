package tfdrift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Release is a terraform release at its applied revision.
type Release struct {
	// Name is the hub's release name.
	Name string
	// Revision is the applied revision.
	Revision int64
	// Mode is reconcile.ModeDetect (the default, "") or
	// reconcile.ModeCorrect.
	Mode reconcile.Mode
	// TaskID is the task that applied the revision; the checks download
	// its artifacts.
	TaskID string
	// Spec is that task's spec (taskspec.Terraform).
	Spec json.RawMessage
	// Artifacts are the digests the task declared.
	Artifacts []string
	// Fetcher downloads them, as for the task.
	Fetcher executor.ArtifactFetcher
}

// mode returns the effective mode.
func (r *Release) mode() reconcile.Mode {
	if r.Mode == "" {
		return reconcile.ModeDetect
	}
	return r.Mode
}

// Validate checks the release and returns its spec.
func (r *Release) Validate() (*taskspec.Terraform, error) {
	if r.Name == "" {
		return nil, fmt.Errorf("%w: name is required", ErrInvalidRelease)
	}
	switch r.Mode {
	case "", reconcile.ModeDetect, reconcile.ModeCorrect:
	default:
		return nil, fmt.Errorf("%w: release %s: mode %q: want %q or %q", ErrInvalidRelease, r.Name, r.Mode, reconcile.ModeDetect, reconcile.ModeCorrect)
	}
	var s taskspec.Terraform
	if err := taskspec.Decode(r.Spec, &s); err != nil {
		return nil, fmt.Errorf("%w: release %s: %w", ErrInvalidRelease, r.Name, err)
	}
	if s.EffectiveAction() == taskspec.TerraformDestroy {
		return nil, fmt.Errorf("%w: release %s: its spec destroys the workspace; there is nothing to check", ErrInvalidRelease, r.Name)
	}
	return &s, nil
}

// same reports whether r and o check the same thing the same way.
func (r *Release) same(o *Release) bool {
	return r.Revision == o.Revision && r.mode() == o.mode() && r.TaskID == o.TaskID &&
		bytes.Equal(r.Spec, o.Spec) && slices.Equal(r.Artifacts, o.Artifacts)
}

// specFor returns the release's spec with its action replaced, every
// other field as the hub sent it.
func (r *Release) specFor(action string) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Spec, &fields); err != nil {
		return nil, fmt.Errorf("%w: release %s: %w", ErrInvalidRelease, r.Name, err)
	}
	a, err := json.Marshal(action)
	if err != nil {
		return nil, err
	}
	fields["action"] = a
	return json.Marshal(fields)
}
