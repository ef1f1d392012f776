package e2e

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

var (
	clusterOnce sync.Once
	clusterEnv  *kubetest.Env
	clusterErr  error
)

// cluster starts one real kube-apiserver and etcd for the whole package,
// on first use. Where the binaries are not built the test is skipped
// loudly, except under CI=true, where that fails.
func cluster(t *testing.T) *kubetest.Env {
	t.Helper()
	clusterOnce.Do(func() { clusterEnv, clusterErr = kubetest.Start() })
	if errors.Is(clusterErr, kubetest.ErrNoAssets) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPING %s: %v\n\n", t.Name(), clusterErr)
		t.Skip(clusterErr)
	}
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return clusterEnv
}

func stopCluster() {
	if clusterEnv != nil {
		if err := clusterEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}
