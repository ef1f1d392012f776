package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
)

func (a *app) newEnvStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show an environment's agents, releases, tasks and keys",
		Long: `status summarises one environment: its agents (connected or not, when last
seen, which version), its releases (how many are in sync, drifted, failed,
pending or deleting, and which ones need attention), its queued and running
tasks and the tasks that failed in the last 24 hours, and the public keys
secrets are sealed to, with the number of secrets.

NAME may be left out when the tenant has exactly one environment.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var env string
			if len(args) == 1 {
				env = args[0]
			} else if env, err = onlyEnvironment(ctx, client); err != nil {
				return err
			}
			res, err := client.GetEnvironmentStatus(ctx, connect.NewRequest(&v1.GetEnvironmentStatusRequest{Environment: env}))
			if err != nil {
				return apiError("environment status "+env, err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.envStatus(w, env, res.Msg) })
		},
	}
}

// onlyEnvironment returns the tenant's environment when it has exactly one.
func onlyEnvironment(ctx context.Context, client outpostv1connect.OperatorServiceClient) (string, error) {
	res, err := client.ListEnvironments(ctx, connect.NewRequest(&v1.ListEnvironmentsRequest{}))
	if err != nil {
		return "", apiError("list environments", err)
	}
	envs := res.Msg.GetEnvironments()
	switch len(envs) {
	case 0:
		return "", errors.New("env status: the tenant has no environment yet; create one with `outpost env create NAME`")
	case 1:
		return envs[0].GetName(), nil
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.GetName()
	}
	return "", fmt.Errorf("env status: name the environment, one of %s", orList(names))
}

// syncOrder is the order sync states are counted and listed in.
var syncOrder = []v1.ReleaseSync{
	v1.ReleaseSync_RELEASE_SYNC_IN_SYNC, v1.ReleaseSync_RELEASE_SYNC_DRIFTED, v1.ReleaseSync_RELEASE_SYNC_FAILED,
	v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_DELETING,
}

// envStatus is the `env status` view.
func (a *app) envStatus(w io.Writer, env string, s *v1.GetEnvironmentStatusResponse) {
	name := env
	if e := s.GetEnvironment(); e != nil {
		name = envName(e.GetTenant(), e.GetName())
	}
	row(w, "ENVIRONMENT:", name)

	agents := s.GetAgents()
	connected := 0
	for _, ag := range agents {
		if ag.GetConnected() {
			connected++
		}
	}
	row(w, "AGENTS:", fmt.Sprintf("%d, %d connected", len(agents), connected))
	if len(agents) > 0 {
		row(w, "  ID", "HOSTNAME", "VERSION", "CONNECTED", "LAST SEEN")
		for _, ag := range agents {
			state := cond(ag.GetConnected(), "yes", "no")
			if ag.GetDisabled() {
				state += " (disabled)"
			}
			row(w, "  "+ag.GetId(), orDash(ag.GetHostname()), orDash(ag.GetVersion()), state, a.ago(ag.GetLastSeenAt()))
		}
	}

	rels := s.GetReleases()
	counts := map[v1.ReleaseSync]int{}
	for _, r := range rels {
		counts[r.GetSync()]++
	}
	var parts []string
	for _, st := range syncOrder {
		if n := counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, syncName(st)))
		}
	}
	summary := strconv.Itoa(len(rels))
	if len(parts) > 0 {
		summary += ": " + strings.Join(parts, ", ")
	}
	row(w, "RELEASES:", summary)
	attention := slices.DeleteFunc(slices.Clone(rels), func(r *v1.Release) bool {
		return r.GetSync() == v1.ReleaseSync_RELEASE_SYNC_IN_SYNC
	})
	slices.SortStableFunc(attention, func(x, y *v1.Release) int {
		return cmp.Or(cmp.Compare(slices.Index(syncOrder, x.GetSync()), slices.Index(syncOrder, y.GetSync())), strings.Compare(x.GetName(), y.GetName()))
	})
	if len(attention) > 0 {
		row(w, "  NAME", "SYNC", "REVISION", "DETAIL")
		for _, r := range attention {
			row(w, "  "+r.GetName(), syncName(r.GetSync()), fmt.Sprintf("%d wanted, %s applied", r.GetRevision(), revisionOrNone(r.GetAppliedRevision())), releaseProblem(r))
		}
	}

	row(w, "TASKS:", fmt.Sprintf("%d active, %d failed in the last 24h", s.GetActiveTasks(), s.GetFailedTasks()))

	if keys := s.GetKeys(); len(keys) > 0 {
		row(w, "KEYS:", plural(int64(len(keys)), "key"))
		row(w, "  VERSION", "FINGERPRINT", "STATE", "REGISTERED")
		for _, k := range keys {
			row(w, "  "+strconv.Itoa(int(k.GetVersion())), shortDigest(k.GetFingerprint()), cond(k.GetRetired(), "retired", "current"), a.when(k.GetRegisteredAt()))
		}
	}
	secrets := 0
	for _, sec := range s.GetSecrets() {
		if !sec.GetDeleted() {
			secrets++
		}
	}
	if secrets > 0 || len(s.GetKeys()) > 0 {
		row(w, "SECRETS:", strconv.Itoa(secrets))
	}
}

// releaseProblem says in a few words what is wrong with a release.
func releaseProblem(r *v1.Release) string {
	switch r.GetSync() {
	case v1.ReleaseSync_RELEASE_SYNC_DRIFTED:
		s := plural(int64(len(r.GetDrift())), "object") + " drifted"
		if r.GetDriftCorrected() {
			s += ", corrected"
		}
		return s
	case v1.ReleaseSync_RELEASE_SYNC_FAILED:
		return oneLine(orDash(r.GetLastError()))
	}
	return "task " + orDash(r.GetTaskId())
}

// oneLine keeps the first line of s, without tabs, for a table cell.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "\t", " ")
}
