package chartsource

import (
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// maxListedVersions is how many available versions an error names.
const maxListedVersions = 5

// selectVersion picks from available the version want names: the same
// string exactly, else the highest version the constraint accepts. An empty
// want means the highest stable version; constraints skip prereleases
// unless they name one (Masterminds semantics, as Helm). Entries that are
// not semver are only matched exactly.
func selectVersion(available []string, want string) (string, error) {
	if want != "" && slices.Contains(available, want) {
		return want, nil
	}
	spec := want
	if spec == "" {
		spec = "*"
	}
	constraint, err := semver.NewConstraint(spec)
	if err != nil {
		return "", fmt.Errorf("%w: version %q is neither a version nor a semver constraint (%w)", ErrInvalidRequest, want, err)
	}
	type candidate struct {
		raw string
		v   *semver.Version
	}
	sorted := make([]candidate, 0, len(available))
	for _, raw := range available {
		if v, err := semver.NewVersion(raw); err == nil {
			sorted = append(sorted, candidate{raw, v})
		}
	}
	slices.SortStableFunc(sorted, func(a, b candidate) int { return b.v.Compare(a.v) })
	for _, c := range sorted {
		if constraint.Check(c.v) {
			return c.raw, nil
		}
	}
	listed := make([]string, 0, maxListedVersions)
	for _, c := range sorted {
		if len(listed) == maxListedVersions {
			break
		}
		listed = append(listed, c.raw)
	}
	avail := "none"
	if len(listed) > 0 {
		avail = strings.Join(listed, ", ")
		if len(sorted) > len(listed) {
			avail += fmt.Sprintf(", ... (%d in all)", len(sorted))
		}
	}
	if want == "" {
		return "", fmt.Errorf("%w: every published version is a prerelease, and an empty version asks for the latest stable one; name a prerelease to use it (available: %s)", ErrNoMatchingVersion, avail)
	}
	return "", fmt.Errorf("%w constraint %q (available: %s)", ErrNoMatchingVersion, want, avail)
}
