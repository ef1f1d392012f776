package agent

import (
	"fmt"
	"strings"
	"testing"
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
