package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
)

// ErrReleaseAwaitingApproval is returned when a release being waited for
// stopped at a terraform plan that waits for an operator's approval.
var ErrReleaseAwaitingApproval = errors.New("release awaits approval")

func (a *app) newReleaseApproveCommand() *cobra.Command {
	var (
		ref      releaseRef
		revision int64
		yes      bool
		wait     waitFlags
	)
	cmd := &cobra.Command{
		Use:   "approve NAME [--env NAME] [--revision N] [--yes] [--wait [--timeout D]]",
		Short: "Review the plan a terraform release awaits and let the agent apply it",
		Long: `A terraform release whose approval policy (spec.terraform.approval: destroy or
always) holds a plan stops before changing anything: the release awaits
approval. approve shows that plan (the counts, then each resource with its
action, destroys and replacements in capitals), asks for confirmation on a
terminal (elsewhere pass --yes) and approves exactly the plan shown: the agent
plans again and applies only if the new plan has the same digest. If it
changed meanwhile, nothing is applied and the new plan awaits approval.

  outpost release approve infra --env prod
  outpost release approve infra --env prod --revision 4 --yes --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if revision < 0 {
				return errors.New("release approve: --revision must be a revision number (see `outpost release history NAME`)")
			}
			if err := wait.check("release approve"); err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			client, env, err := a.dialRelease(ctx, &ref, name)
			if err != nil {
				return err
			}
			rev, err := a.planAwaitingApproval(ctx, client, env, name, revision)
			if err != nil {
				return err
			}
			plan := rev.GetPlan()
			out := a.opts.Stdout
			if a.format != formatTable {
				out = a.opts.Stderr // stdout carries the JSON or YAML result
			}
			writePlanReview(out, name, env, rev)
			if !yes {
				ok, err := a.confirm(fmt.Sprintf("Apply this plan of release %s to %s (%s)?", name, env, planCounts(plan)))
				if err != nil {
					return fmt.Errorf("release approve: %w", err)
				}
				if !ok {
					return errors.New("release approve: not confirmed; nothing was approved")
				}
			}
			res, err := client.ApproveRelease(ctx, connect.NewRequest(&v1.ApproveReleaseRequest{
				Environment: env, Name: name, Revision: rev.GetRevision(), PlanDigest: plan.GetDigest(),
			}))
			if err != nil {
				return apiError("approve release "+name, err)
			}
			if err := a.printOutcome(res.Msg, "release %s: plan %s of revision %d approved; the agent applies it (task %s)\n",
				name, shortDigest(plan.GetDigest()), rev.GetRevision(), orDash(res.Msg.GetTaskId())); err != nil {
				return err
			}
			if !wait.wait {
				return nil
			}
			return a.waitReleaseAndReport(ctx, client, env, name, rev.GetRevision(), false, wait.timeout)
		},
	}
	ref.bind(cmd)
	cmd.Flags().Int64Var(&revision, "revision", 0, "revision whose plan to approve (default: the newest, which must await approval)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "approve without asking")
	wait.bind(cmd, "the approved plan is applied", "it failed or another plan awaits approval")
	return cmd
}

// planAwaitingApproval returns the revision of release name whose plan
// awaits approval: revision, or the newest when it is 0.
func (a *app) planAwaitingApproval(ctx context.Context, client outpostv1connect.OperatorServiceClient, env, name string, revision int64) (*v1.ReleaseRevision, error) {
	res, err := client.GetRelease(ctx, connect.NewRequest(&v1.GetReleaseRequest{Environment: env, Name: name}))
	if err != nil {
		return nil, apiError("get release "+name, err)
	}
	rel := res.Msg.GetRelease()
	if rel.GetSync() != v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL {
		return nil, fmt.Errorf("release approve: release %s in %s is %s: no plan awaits approval", name, env, syncName(rel.GetSync()))
	}
	if revision == 0 {
		revision = rel.GetRevision()
	}
	if revision != rel.GetRevision() {
		return nil, fmt.Errorf("release approve: revision %d of release %s awaits approval, not %d", rel.GetRevision(), name, revision)
	}
	rev := res.Msg.GetRevision()
	if rev.GetRevision() != revision {
		got, err := client.GetReleaseRevision(ctx, connect.NewRequest(&v1.GetReleaseRevisionRequest{Environment: env, Name: name, Revision: revision}))
		if err != nil {
			return nil, apiError(fmt.Sprintf("get release %s revision %d", name, revision), err)
		}
		rev = got.Msg.GetRevision()
	}
	if rev.GetPlan().GetDigest() == "" {
		return nil, fmt.Errorf("release approve: revision %d of release %s has no plan to approve", revision, name)
	}
	return rev, nil
}

// writePlanReview writes what an operator approves: the counts, each
// resource with its action, and the digest sent with the approval.
func writePlanReview(w io.Writer, name, env string, rev *v1.ReleaseRevision) {
	plan := rev.GetPlan()
	linef(w, "Plan of release %s (%s), revision %d: %s.\n", name, env, rev.GetRevision(), planCounts(plan))
	for _, line := range planLines(plan) {
		linef(w, "  %s\n", line)
	}
	if plan.GetDestroy() > 0 {
		linef(w, "This plan DESTROYS %s.\n", plural(int64(plan.GetDestroy()), "resource"))
	}
	linef(w, "Plan digest: %s\n", safeText(plan.GetDigest()))
}
