package chartsource

import (
	"errors"
	"strings"
	"testing"
)

func TestSelectVersion(t *testing.T) {
	published := []string{"1.0.0", "1.10.0", "1.2.0", "1.2.3", "2.0.0-beta.1", "0.9.0", "not-semver"}
	for _, tc := range []struct {
		name, want, got string
	}{
		{"an empty version picks the highest stable version, compared as semver", "", "1.10.0"},
		{"a caret constraint picks the highest compatible version", "^1.2", "1.10.0"},
		{"a tilde constraint stays within the minor version", "~1.2.0", "1.2.3"},
		{"a partial version is a range", "1.2", "1.2.3"},
		{"a constraint that names a prerelease may pick one", ">=2.0.0-0", "2.0.0-beta.1"},
		{"a version that is not semver is matched exactly", "not-semver", "not-semver"},
		{"an exact version is matched as written", "1.0.0", "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := selectVersion(published, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.got {
				t.Fatalf("selectVersion(%q) = %q, want %q", tc.want, got, tc.got)
			}
		})
	}
	t.Run("an empty version among prereleases only says so", func(t *testing.T) {
		_, err := selectVersion([]string{"1.0.0-rc.1", "1.0.0-rc.2"}, "")
		if !errors.Is(err, ErrNoMatchingVersion) || !strings.Contains(err.Error(), "every published version is a prerelease") || !strings.Contains(err.Error(), "(available: 1.0.0-rc.2, 1.0.0-rc.1)") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("nothing published lists none", func(t *testing.T) {
		_, err := selectVersion(nil, "^1")
		if !errors.Is(err, ErrNoMatchingVersion) || !strings.Contains(err.Error(), "(available: none)") {
			t.Fatalf("error %v", err)
		}
	})
}
