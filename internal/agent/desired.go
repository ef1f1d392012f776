package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
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

// TerraformDesired is what the agent hands the terraform releases of its
// desired state to: the drift checker. It keeps checking the last set it
// was given while the hub is unreachable.
type TerraformDesired interface {
	// SetDesired replaces the terraform releases.
	SetDesired(rels []tfdrift.Release)
	// Forget stops checking one release.
	Forget(name string)
}

// forgetRemoved stops the reconciler from keeping a release this task is
// about to remove (a manifests delete, a helm uninstall), and the drift
// checker from checking one a terraform destroy removes, before any of its
// objects or resources go. It runs under the task's locks, which the
// reconciler takes to correct a release and the checker to check one, so
// no correction slips in between.
func (a *Agent) forgetRemoved(task *outpostv1.Task) {
	var forget func(name string)
	switch task.GetKind() {
	case taskspec.KindManifests:
		var spec taskspec.Manifests
		if a.opts.Desired != nil && taskspec.DecodeStrict(task.GetSpec(), &spec) == nil && spec.Delete {
			forget = a.opts.Desired.Forget
		}
	case taskspec.KindHelm:
		var spec taskspec.Helm
		if a.opts.Desired != nil && taskspec.DecodeStrict(task.GetSpec(), &spec) == nil && spec.EffectiveAction() == taskspec.HelmUninstall {
			forget = a.opts.Desired.Forget
		}
	case taskspec.KindTerraform:
		var spec taskspec.Terraform
		if a.opts.Terraform != nil && taskspec.DecodeStrict(task.GetSpec(), &spec) == nil && spec.EffectiveAction() == taskspec.TerraformDestroy {
			forget = a.opts.Terraform.Forget
		}
	}
	if forget == nil {
		return
	}
	for _, key := range task.GetConflictKeys() {
		if name, ok := strings.CutPrefix(key, reconcile.LockKey("")); ok {
			forget(name)
		}
	}
}

var (
	_ DesiredState     = (*reconcile.Reconciler)(nil)
	_ TerraformDesired = (*tfdrift.Checker)(nil)
)

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
// had meanwhile, and an agent that has none yet takes the one its
// DesiredCache kept. loaded says the kept state was already handed over.
func (a *Agent) desiredLoop(ctx context.Context, loaded bool) error {
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
				loaded, failures = loaded || err == nil, 0
				break
			}
			failures++
			a.opts.Logger.Warn("cannot fetch the desired state; reconciling the last one known", "error", err, "attempt", failures)
			if !loaded {
				loaded = a.loadCachedDesired(ctx)
			}
			if a.opts.Reconnect.Sleep(ctx, failures) != nil {
				return nil //nolint:nilerr // the agent is stopping
			}
		}
	}
}

// fetchDesired loads the desired state, gives it to the reconciler and
// keeps it in the DesiredCache.
func (a *Agent) fetchDesired(ctx context.Context) error {
	resp, err := a.client.GetDesiredState(ctx, connect.NewRequest(&outpostv1.GetDesiredStateRequest{}))
	if err != nil {
		return fmt.Errorf("agent: desired state: %w", err)
	}
	if err := a.applyDesired(ctx, resp.Msg, false); err != nil {
		return err
	}
	a.keepDesired(ctx, resp.Msg)
	return nil
}

// applyDesired turns a desired state into the reconciler's form and hands
// it over. A release that cannot be turned into desired state is logged
// and left out, so one bad release does not stop the others being
// reconciled; with partial set (the hub is unreachable) so is one whose
// artifact cannot be downloaded, otherwise that fails the whole state.
func (a *Agent) applyDesired(ctx context.Context, msg *outpostv1.GetDesiredStateResponse, partial bool) error {
	rels := make([]reconcile.Release, 0, len(msg.GetReleases()))
	var tfRels []tfdrift.Release
	for _, d := range msg.GetReleases() {
		if d.GetRevision().GetKind() == taskspec.KindTerraform {
			if a.opts.Terraform == nil {
				a.opts.Logger.Debug("terraform release not checked for drift: this agent runs no terraform drift checker", "release", d.GetName())
				continue
			}
			tfRels = append(tfRels, a.terraformRelease(d))
			continue
		}
		rel, err := a.desiredRelease(ctx, d)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !executor.IsTerminal(err) && !partial {
				return err
			}
			a.opts.Logger.Error("release left out of reconciliation", "release", d.GetName(), "error", err)
			continue
		}
		rels = append(rels, rel)
	}
	a.opts.Desired.SetDesired(rels)
	if a.opts.Terraform != nil {
		a.opts.Terraform.SetDesired(tfRels)
	}
	a.opts.Logger.Debug("desired state loaded", "releases", len(rels), "terraform_releases", len(tfRels))
	return nil
}

// terraformRelease turns a hub release of kind terraform into the drift
// checker's form. Its checks download the module artifact, if any, as the
// task that applied it did. A terraform release runs in the detect mode
// unless the hub says correct.
func (a *Agent) terraformRelease(d *outpostv1.DesiredRelease) tfdrift.Release {
	rev := d.GetRevision()
	rel := tfdrift.Release{
		Name: d.GetName(), Revision: rev.GetRevision(), Mode: reconcile.ModeDetect,
		TaskID: d.GetTaskId(), Spec: rev.GetSpec(), Artifacts: rev.GetArtifacts(),
		Fetcher: &artifactFetcher{client: a.client, taskID: d.GetTaskId()},
	}
	if rev.GetMode() == outpostv1.ReleaseMode_RELEASE_MODE_CORRECT {
		rel.Mode = reconcile.ModeCorrect
	}
	return rel
}

// keepDesired saves msg in the DesiredCache when it differs from what was
// saved last. A failure is logged: it only matters if the agent restarts
// while the hub is unreachable.
func (a *Agent) keepDesired(ctx context.Context, msg *outpostv1.GetDesiredStateResponse) {
	if a.opts.DesiredCache == nil {
		return
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		a.opts.Logger.Warn("cannot encode the desired state to keep it", "error", err)
		return
	}
	sum := sha256.Sum256(raw)
	if sum == a.savedDesired {
		return
	}
	if err := a.opts.DesiredCache.Save(ctx, raw); err != nil {
		a.opts.Logger.Warn("cannot keep the desired state for a restart while the hub is unreachable", "error", err)
		return
	}
	a.savedDesired = sum
}

// loadCachedDesired hands the reconciler the desired state the cache kept;
// it reports whether there was one.
func (a *Agent) loadCachedDesired(ctx context.Context) bool {
	if a.opts.DesiredCache == nil {
		return false
	}
	raw, err := a.opts.DesiredCache.Load(ctx)
	if err != nil || raw == nil {
		if err != nil {
			a.opts.Logger.Warn("cannot read the kept desired state", "error", err)
		}
		return false
	}
	var msg outpostv1.GetDesiredStateResponse
	if err := proto.Unmarshal(raw, &msg); err != nil {
		a.opts.Logger.Warn("the kept desired state does not decode; waiting for the hub", "error", err)
		return false
	}
	if err := a.applyDesired(ctx, &msg, true); err != nil {
		return false
	}
	a.savedDesired = sha256.Sum256(raw)
	a.opts.Logger.Info("reconciling the desired state kept from the last fetch until the hub answers", "releases", len(msg.GetReleases()))
	return true
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
		Error: bound(a.opts.NewRedactor().String(d.Error), maxDriftErrorLen), ObservedAt: timestamppb.New(d.Time),
	}
	for _, o := range d.Objects[:min(len(d.Objects), maxDriftObjects)] {
		req.Objects = append(req.Objects, &outpostv1.ObjectDrift{
			Group: o.Group, Version: o.Version, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Deleted: o.Deleted, Fields: boundFields(o.Fields), Address: bound(o.Address, maxDriftAddressLen),
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

// The hub's bounds on a drift report; a larger drift is summarised to fit.
const (
	maxDriftObjects    = 1000
	maxDriftFields     = 64
	maxDriftFieldLen   = 512
	maxDriftErrorLen   = 4096
	maxDriftAddressLen = 1024
)

// bound shortens s to at most n bytes, cut at a character boundary and
// marked with "…": an OpenTofu error may run to several kilobytes.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// boundFields fits an object's drifted fields into the hub's bounds: long
// paths are shortened, and past the limit the last entry counts the rest.
func boundFields(fields []string) []string {
	out := make([]string, 0, min(len(fields), maxDriftFields))
	for i, f := range fields {
		if i == maxDriftFields-1 && len(fields) > maxDriftFields {
			return append(out, fmt.Sprintf("(and %d more fields)", len(fields)-i))
		}
		if len(f) > maxDriftFieldLen {
			f = bound(f, maxDriftFieldLen)
		}
		out = append(out, f)
	}
	return out
}

// Locker returns the keyed lock tasks hold while they run, for the
// reconciler to hold while it corrects a release.
func (a *Agent) Locker() reconcile.Locker { return &a.locks }
