package helm_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/taskspec"
)

// leavePending marks the newest record of release as an agent killed in
// the middle of an operation leaves it.
func leavePending(t *testing.T, ns, name string, status rcommon.Status) {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	host, token := env.Config.Host, env.Config.BearerToken
	flags.APIServer, flags.Namespace = &host, &ns
	if token != "" {
		flags.BearerToken = &token
	}
	cfg := action.NewConfiguration()
	restCfg := env.Config
	flags.WrapConfigFn = func(*rest.Config) *rest.Config { return rest.CopyConfig(restCfg) }
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	last, err := cfg.Releases.Last(name)
	if err != nil {
		t.Fatal(err)
	}
	rel := last.(*release.Release)
	rel.SetStatus(status, "interrupted")
	if err := cfg.Releases.Update(rel); err != nil {
		t.Fatal(err)
	}
}

func TestARecordLeftPendingIsRecovered(t *testing.T) {
	chart := packChart(t, "shop", nil)
	for _, status := range []rcommon.Status{rcommon.StatusPendingInstall, rcommon.StatusPendingUpgrade, rcommon.StatusPendingRollback} {
		t.Run("the next upgrade goes on after "+status.String(), func(t *testing.T) {
			s := admin(t)
			ex := s.executor(t)
			mustRun(t, ex, "p-1", shop(s.target, "pend", chart, noWidget))
			leavePending(t, s.target, "pend", status)
			res := mustRun(t, ex, "p-2", shop(s.target, "pend", chart, map[string]any{"greeting": "after", "widget": map[string]any{"enabled": false}}))
			if res.Revision != 2 || res.Status != "deployed" {
				t.Fatalf("result %+v, want revision 2 deployed", res)
			}
			hist := mustRun(t, ex, "p-3", taskspec.Helm{Action: taskspec.HelmHistory, Release: "pend", Namespace: s.target})
			if len(hist.History) != 2 || !strings.Contains(hist.History[1].Description, "interrupted while "+status.String()) {
				t.Errorf("history %+v, want revision 1 marked as interrupted", hist.History)
			}
			for _, h := range hist.History {
				if strings.HasPrefix(h.Status, "pending") {
					t.Errorf("revision %d is still %s", h.Revision, h.Status)
				}
			}
		})
	}
}
