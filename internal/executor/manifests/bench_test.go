package manifests_test

import (
	"fmt"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/taskspec"
)

// BenchmarkApplyThousandObjects applies a 1,000-object bundle of new
// objects per iteration as the administrator: validation, access review,
// collision reads, dry-run, apply and commit.
func BenchmarkApplyThousandObjects(b *testing.B) {
	cfg := rest.CopyConfig(env.Config)
	// As the agent does: the executor picks its own rate limits.
	cfg.QPS, cfg.Burst = 0, 0
	s := setup{cfg: cfg, agentNS: env.Namespace(b, "bench-agent"), target: env.Namespace(b, "bench-app")}
	ex := s.executor(b)
	for i := 0; b.Loop(); i++ {
		docs := make([]string, 0, 1000)
		for n := range 1000 {
			docs = append(docs, configMap(fmt.Sprintf("cm-%d-%04d", i, n), "", map[string]string{"index": fmt.Sprint(n)}))
		}
		spec := taskspec.Manifests{Release: fmt.Sprintf("bench-%d", i), Namespace: s.target, Bundle: join(docs...)}
		if _, err := ex.Execute(b.Context(), task(b, fmt.Sprintf("b%d", i), 1, spec)); err != nil {
			b.Fatal(err)
		}
	}
}
