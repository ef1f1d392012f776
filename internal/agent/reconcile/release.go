package reconcile

import (
	"fmt"
	"strings"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Mode says what the reconciler does about drift.
type Mode string

// Modes.
const (
	// ModeCorrect applies the desired state again and reports the
	// correction. The empty Mode means ModeCorrect.
	ModeCorrect Mode = "correct"
	// ModeDetect reports drift and never writes.
	ModeDetect Mode = "detect"
)

// Release kinds.
const (
	// KindManifests is a release applied by the manifests executor.
	KindManifests = "manifests"
	// KindHelm is a Helm release.
	KindHelm = "helm"
)

// Field managers of the release kinds: drift is judged on the fields they
// own, and corrections are applied as them.
const (
	// ManifestsFieldManager is the manifests executor's field manager.
	ManifestsFieldManager = manifests.FieldManager
	// HelmFieldManager is the helm executor's (Helm's own) field manager.
	HelmFieldManager = "helm"
)

// IgnoreRule takes fields out of the drift comparison of the objects of a
// kind: an ignored field never counts as drift and a correction keeps its
// live value.
type IgnoreRule struct {
	// Group is the API group of the kind; "" or "*" means any group.
	Group string `json:"group,omitempty"`
	// Kind is the kind; "" or "*" means every kind.
	Kind string `json:"kind,omitempty"`
	// Paths are JSON pointers ("/spec/replicas"); a pointer covers every
	// field under it. A segment "*" matches any one segment; list
	// elements are written as in ObjectDrift.Fields ("[name=app]").
	Paths []string `json:"paths"`
}

func (r IgnoreRule) matches(group, kind string) bool {
	return (r.Group == "" || r.Group == "*" || r.Group == group) &&
		(r.Kind == "" || r.Kind == "*" || r.Kind == kind)
}

// HelmRef names a Helm release, whose desired objects are the manifest of
// its latest deployed revision in Helm's own storage.
type HelmRef struct {
	// Namespace is the release's namespace.
	Namespace string
	// ReleaseName is the Helm release name.
	ReleaseName string
}

// Release is the desired state of one release of the environment.
type Release struct {
	// Name is the hub's release name.
	Name string
	// Kind is KindManifests or KindHelm.
	Kind string
	// Revision is the hub revision the desired state corresponds to; a
	// manifests release's objects are labelled with it, as its task
	// labels them (the spec's Revision, when set, must be the same).
	// Live objects labelled with a higher revision make the desired state
	// stale; lower ones are corrected like any drift.
	Revision int64
	// Mode is ModeCorrect (the default) or ModeDetect.
	Mode Mode
	// Ignore lists the fields left out of the comparison.
	Ignore []IgnoreRule
	// Manifests is the task spec of a manifests release. Its Release
	// names the objects' outpost.dev/release label.
	Manifests *taskspec.Manifests
	// Bundle is the bundle of a manifests release: the spec's inline
	// bundle or, when the spec names an artifact, the artifact's bytes.
	// Empty means the spec's inline bundle.
	Bundle []byte
	// Helm names the Helm release of a helm release.
	Helm *HelmRef
}

// mode returns the effective mode.
func (r *Release) mode() Mode {
	if r.Mode == "" {
		return ModeCorrect
	}
	return r.Mode
}

// manager returns the field manager of the release's objects.
func (r *Release) manager() string {
	if r.Kind == KindHelm {
		return HelmFieldManager
	}
	return ManifestsFieldManager
}

// bundle returns the bytes of a manifests release's bundle.
func (r *Release) bundle() []byte {
	if len(r.Bundle) > 0 {
		return r.Bundle
	}
	return []byte(r.Manifests.Bundle)
}

// Validate checks the release and names the first field at fault.
func (r *Release) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("%w: name is required", ErrInvalidRelease)
	}
	if r.Revision < 0 {
		return fmt.Errorf("%w: release %s: revision %d is negative", ErrInvalidRelease, r.Name, r.Revision)
	}
	switch r.Mode {
	case "", ModeCorrect, ModeDetect:
	default:
		return fmt.Errorf("%w: release %s: mode %q: want %q or %q", ErrInvalidRelease, r.Name, r.Mode, ModeCorrect, ModeDetect)
	}
	for i, rule := range r.Ignore {
		if len(rule.Paths) == 0 {
			return fmt.Errorf("%w: release %s: ignore[%d]: paths are required", ErrInvalidRelease, r.Name, i)
		}
		for _, p := range rule.Paths {
			if !strings.HasPrefix(p, "/") || p == "/" {
				return fmt.Errorf("%w: release %s: ignore[%d]: path %q: want a JSON pointer such as /spec/replicas", ErrInvalidRelease, r.Name, i, p)
			}
		}
	}
	switch r.Kind {
	case KindManifests:
		if r.Manifests == nil {
			return fmt.Errorf("%w: release %s: a manifests release needs its spec", ErrInvalidRelease, r.Name)
		}
		if r.Revision < 1 {
			return fmt.Errorf("%w: release %s: a manifests release needs its revision (1 or more)", ErrInvalidRelease, r.Name)
		}
		if r.Manifests.Revision != 0 && r.Manifests.Revision != r.Revision {
			return fmt.Errorf("%w: release %s: the spec's revision %d is not the release's %d", ErrInvalidRelease, r.Name, r.Manifests.Revision, r.Revision)
		}
		if !taskspec.IsDNSLabel(r.Manifests.Release) {
			return fmt.Errorf("%w: release %s: spec release %q: want a DNS-1123 label", ErrInvalidRelease, r.Name, r.Manifests.Release)
		}
		if r.Manifests.Artifact != "" && len(r.Bundle) == 0 {
			return fmt.Errorf("%w: release %s: the spec names artifact %s: pass its bytes in Bundle", ErrInvalidRelease, r.Name, r.Manifests.Artifact)
		}
	case KindHelm:
		if r.Helm == nil || !taskspec.IsDNSLabel(r.Helm.Namespace) || r.Helm.ReleaseName == "" {
			return fmt.Errorf("%w: release %s: a helm release needs its namespace and release name", ErrInvalidRelease, r.Name)
		}
	default:
		return fmt.Errorf("%w: release %s: kind %q: want %q or %q", ErrInvalidRelease, r.Name, r.Kind, KindManifests, KindHelm)
	}
	return nil
}
