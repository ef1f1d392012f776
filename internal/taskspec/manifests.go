package taskspec

import (
	"fmt"
	"strings"
)

// KindManifests applies a bundle of Kubernetes objects with server-side
// apply, keeps an inventory of what each release owns, prunes what a new
// revision drops and, with Delete, deletes a release.
const KindManifests = "manifests"

// Bounds of a manifests spec.
const (
	// MaxReleaseLength caps Release, so that names derived from it (the
	// inventory Secret) stay valid.
	MaxReleaseLength = 53
	// ArtifactDigestPrefix starts every artifact reference.
	ArtifactDigestPrefix = "sha256:"
)

// Manifests is the spec of a manifests task: the objects of one revision of
// a release, inline or as a task artifact. The agent labels every object it
// writes with the release and revision, skips objects it does not own unless
// Adopt is set, and prunes what the release's previous revision held and
// this one lacks unless Prune is false. With Delete, the task removes the
// release instead: the objects its inventory holds and the inventory.
type Manifests struct {
	// Release names the set of objects the task manages: a DNS-1123 label
	// of at most MaxReleaseLength characters.
	Release string `json:"release"`
	// Namespace is given to namespaced objects that name none. Required
	// when any namespaced object of the bundle lacks a namespace.
	Namespace string `json:"namespace,omitempty"`
	// Revision numbers this state of the release; 0 lets the agent pick
	// the previous revision plus one (or the previous revision when the
	// content is unchanged).
	Revision int64 `json:"revision,omitempty"`
	// Bundle holds the objects inline: multi-document YAML, a JSON stream
	// of objects, or a List. Exactly one of Bundle and Artifact is set.
	Bundle string `json:"bundle,omitempty"`
	// Artifact references the bundle as one of the task's artifacts
	// ("sha256:<64 hex digits>"), for bundles larger than a spec may be.
	Artifact string `json:"artifact,omitempty"`
	// Adopt lets the task take over existing objects that do not carry
	// this release's ownership labels; otherwise they are skipped.
	Adopt bool `json:"adopt,omitempty"`
	// Prune deletes what the previous revision held and this one lacks;
	// nil means true.
	Prune *bool `json:"prune,omitempty"`
	// Delete removes the release: every object its inventory holds that
	// still carries the release's ownership labels, then the inventory, so
	// a later release of the same name starts afresh. Objects that no
	// longer carry the labels are left in place and reported. A release
	// the agent does not know (never applied, or deleted already) is
	// nothing to do. Bundle, Artifact, Adopt and Revision must be empty,
	// and Prune may not be false; Namespace is not used.
	Delete bool `json:"delete,omitempty"`
}

var _ Spec = (*Manifests)(nil)

// PruneEnabled reports whether the task prunes.
func (s *Manifests) PruneEnabled() bool { return s.Prune == nil || *s.Prune }

// Validate checks every field and names the first one at fault.
func (s *Manifests) Validate() error {
	if s.Release == "" {
		return fmt.Errorf("release: is required")
	}
	if len(s.Release) > MaxReleaseLength || !IsDNSLabel(s.Release) {
		return fmt.Errorf("release %q: want a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit) of at most %d characters", s.Release, MaxReleaseLength)
	}
	if s.Namespace != "" && !IsDNSLabel(s.Namespace) {
		return fmt.Errorf("namespace %q: want a DNS-1123 label of at most 63 characters", s.Namespace)
	}
	if s.Revision < 0 {
		return fmt.Errorf("revision %d: want 0 (next revision) or more", s.Revision)
	}
	if s.Delete {
		return s.validateDelete()
	}
	switch {
	case s.Bundle == "" && s.Artifact == "":
		return fmt.Errorf("bundle: one of bundle and artifact is required")
	case s.Bundle != "" && s.Artifact != "":
		return fmt.Errorf("bundle: give either bundle or artifact, not both")
	case s.Artifact != "" && !IsArtifactDigest(s.Artifact):
		return fmt.Errorf("artifact %q: want %s followed by 64 lower-case hex digits", s.Artifact, ArtifactDigestPrefix)
	}
	return nil
}

// validateDelete checks that a delete gives nothing that describes a
// revision: a delete removes whatever the release holds.
func (s *Manifests) validateDelete() error {
	switch {
	case s.Bundle != "":
		return fmt.Errorf("bundle: must be empty when delete is set; a delete removes what the release holds")
	case s.Artifact != "":
		return fmt.Errorf("artifact: must be empty when delete is set; a delete removes what the release holds")
	case s.Adopt:
		return fmt.Errorf("adopt: may not be set with delete; a delete leaves objects of other owners alone")
	case s.Revision != 0:
		return fmt.Errorf("revision %d: must be 0 when delete is set; a delete removes the release's current revision", s.Revision)
	case !s.PruneEnabled():
		return fmt.Errorf("prune: may not be false when delete is set; a delete removes every object of the release")
	}
	return nil
}

// IsDNSLabel reports whether s is an RFC 1123 label: 1 to 63 lower-case
// letters, digits and '-', starting and ending with a letter or digit.
func IsDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// IsArtifactDigest reports whether s is "sha256:" and 64 lower-case hex
// digits.
func IsArtifactDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, ArtifactDigestPrefix)
	if !ok || len(hex) != 64 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
