// Package agent_test checks the agent's Helm chart, deploy/charts/outpost-agent:
// it lints and renders (golden files), its schema refuses bad values, its
// pod passes the restricted Pod Security profile, and, installed through the
// Helm SDK into a real kube-apiserver, its RBAC profiles grant what they say
// and nothing more.
package agent_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// env is the package's kube-apiserver, nil where its binaries are not
// built (outside CI): then only the tests that need it skip.
var (
	env       *kubetest.Env
	envMissed error
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	e, err := kubetest.Start()
	switch {
	case errors.Is(err, kubetest.ErrNoAssets) && os.Getenv("CI") != "true":
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPING the tests of this package that need a kube-apiserver: %v\n\n", err)
		envMissed = err
		return m.Run()
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// needCluster skips t, loudly, when there is no kube-apiserver.
func needCluster(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skipf("!!! SKIPPED, no kube-apiserver: %v", envMissed)
	}
}
