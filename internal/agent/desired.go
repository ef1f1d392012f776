package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// DesiredState is what the agent hands its environment's desired state to:
// the reconciler. It keeps reconciling the last set it was given while the
// hub is unreachable.
type DesiredState interface {
	// SetDesired replaces the desired releases.
	SetDesired(rels []reconcile.Release)
	// Forget stops reconciling one release, leaving its objects alone.
	Forget(name string)
}

// forgetRemoved stops the reconciler from keeping a release this task is
// about to remove (a manifests delete, a helm uninstall), before any of its
// objects go. It runs under the task's locks, which the reconciler takes
// to correct the release, so no correction slips in between.
func (a *Agent) forgetRemoved(task *outpostv1.Task) {
	if a.opts.Desired == nil {
		return
	}
	var removes bool
	switch task.GetKind() {
	case taskspec.KindManifests:
		var spec taskspec.Manifests
		removes = taskspec.DecodeStrict(task.GetSpec(), &spec) == nil && spec.Delete
	case taskspec.KindHelm:
		var spec taskspec.Helm
		removes = taskspec.DecodeStrict(task.GetSpec(), &spec) == nil && spec.EffectiveAction() == taskspec.HelmUninstall
	}
	if !removes {
		return
	}
	for _, key := range task.GetConflictKeys() {
		if name, ok := strings.CutPrefix(key, reconcile.LockKey("")); ok {
			a.opts.Desired.Forget(name)
		}
	}
}

var _ DesiredState = (*reconcile.Reconciler)(nil)

// RefreshDesired asks the agent to fetch the desired state from the hub
// again (the reconciler found it stale). It never blocks.
func (a *Agent) RefreshDesired() {
	select {
	case a.desiredDue <- struct{}{}:
	default:
	}
}

// desiredLoop fetches the desired state whenever it is due: at start,
// after each (re)connect, on a hub notice and on RefreshDesired. A failed
// fetch is retried with backoff; the reconciler keeps the last state it
// had meanwhile.
func (a *Agent) desiredLoop(ctx context.Context) error {
	a.RefreshDesired()
	failures := int64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.desiredDue:
		}
		for {
			err := a.fetchDesired(ctx)
			if err == nil || ctx.Err() != nil {
				failures = 0
				break
			}
			failures++
			a.opts.Logger.Warn("cannot fetch the desired state; reconciling the last one known", "error", err, "attempt", failures)
			if a.opts.Reconnect.Sleep(ctx, failures) != nil {
				return nil //nolint:nilerr // the agent is stopping
			}
		}
	}
}

// fetchDesired loads the desired state and gives it to the reconciler. A
// release that cannot be turned into desired state is logged and left out,
// so one bad release does not stop the others being reconciled.
func (a *Agent) fetchDesired(ctx context.Context) error {
	resp, err := a.client.GetDesiredState(ctx, connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
	if err != nil {
		return fmt.Errorf("agent: desired state: %w", err)
	}
	rels := make([]reconcile.Release, 0, len(resp.Msg.GetReleases()))
	for _, d := range resp.Msg.GetReleases() {
		rel, err := a.desiredRelease(ctx, d)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !executor.IsTerminal(err) {
				return err
			}
			a.opts.Logger.Error("release left out of reconciliation", "release", d.GetName(), "error", err)
			continue
		}
		rels = append(rels, rel)
	}
	a.opts.Desired.SetDesired(rels)
	a.opts.Logger.Debug("desired state loaded", "releases", len(rels))
	return nil
}

// desiredRelease turns a hub release into the reconciler's form,
// downloading a manifests bundle kept as an artifact. Errors that a retry
// cannot fix are terminal.
func (a *Agent) desiredRelease(ctx context.Context, d *outpostv1.DesiredRelease) (reconcile.Release, error) {
	rev := d.GetRevision()
	rel := reconcile.Release{Name: d.GetName(), Kind: rev.GetKind(), Revision: rev.GetRevision(), Mode: reconcile.ModeCorrect}
	if rev.GetMode() == outpostv1.ReleaseMode_RELEASE_MODE_DETECT {
		rel.Mode = reconcile.ModeDetect
	}
	for _, ig := range rev.GetIgnore() {
		rel.Ignore = append(rel.Ignore, reconcile.IgnoreRule{Group: ig.GetGroup(), Kind: ig.GetKind(), Paths: ig.GetPaths()})
	}
	switch rev.GetKind() {
	case taskspec.KindManifests:
		var spec taskspec.Manifests
		if err := taskspec.Decode(rev.GetSpec(), &spec); err != nil {
			return rel, executor.Terminal(err)
		}
		spec.Revision = rev.GetRevision()
		rel.Manifests = &spec
		if spec.Artifact != "" {
			task := executor.Task{ID: d.GetTaskId(), Artifacts: rev.GetArtifacts(), Fetcher: &artifactFetcher{client: a.client, taskID: d.GetTaskId()}}
			data, err := executor.ReadArtifact(ctx, task, spec.Artifact, bundle.DefaultMaxBytes)
			if err != nil {
				return rel, err
			}
			rel.Bundle = data
		}
	case taskspec.KindHelm:
		var spec taskspec.Helm
		if err := taskspec.Decode(rev.GetSpec(), &spec); err != nil {
			return rel, executor.Terminal(err)
		}
		rel.Helm = &reconcile.HelmRef{Namespace: spec.Namespace, ReleaseName: spec.Release}
	default:
		return rel, executor.Terminal(fmt.Errorf("release %s: kind %q cannot be reconciled by this agent", d.GetName(), rev.GetKind()))
	}
	if err := rel.Validate(); err != nil {
		return rel, executor.Terminal(err)
	}
	return rel, nil
}

// ReportDrift sends a drift report to the hub; the reconciler retries a
// failure. The error text is redacted: a correction's error may quote a
// value.
func (a *Agent) ReportDrift(ctx context.Context, d reconcile.Drift) error {
	req := &outpostv1.ReportDriftRequest{
		Release: d.Release, Revision: d.Revision, Corrected: d.Corrected,
		Error: a.opts.NewRedactor().String(d.Error), ObservedAt: timestamppb.New(d.Time),
	}
	for _, o := range d.Objects {
		req.Objects = append(req.Objects, &outpostv1.ObjectDrift{
			Group: o.Group, Version: o.Version, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Deleted: o.Deleted, Fields: o.Fields,
		})
	}
	_, err := a.client.ReportDrift(ctx, connect.NewRequest(req))
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		// The hub will refuse it again; retrying would only repeat it.
		a.opts.Logger.LogAttrs(ctx, slog.LevelError, "hub refused a drift report", slog.String("release", d.Release), slog.Any("error", err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: report drift of %s: %w", d.Release, err)
	}
	return nil
}

// Locker returns the keyed lock tasks hold while they run, for the
// reconciler to hold while it corrects a release.
func (a *Agent) Locker() reconcile.Locker { return &a.locks }
