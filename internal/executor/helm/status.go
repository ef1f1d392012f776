package helm

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
)

// maxHistoryEntries caps the revisions a history result lists.
const maxHistoryEntries = 256

// status reports the release's newest revision (status) or all its
// revisions (history). Status also reads each object of the revision to
// say whether it is present.
func (e *Executor) status(ctx context.Context, r *run) (*Result, error) {
	last, err := r.last()
	if err != nil {
		return nil, r.fail(PhaseRender, err)
	}
	if last == nil {
		return nil, r.fail(PhaseRender, executor.Terminal(fmt.Errorf("%w", ErrNotFound)))
	}
	res := newResult(r.spec.EffectiveAction(), last)
	if r.spec.EffectiveAction() == taskspec.HelmHistory {
		hist, err := r.cfg.Releases.History(r.spec.Release)
		if err != nil {
			return nil, r.fail(PhaseRender, fmt.Errorf("read history: %w", err))
		}
		for _, h := range hist {
			rel, err := asRelease(h)
			if err != nil || rel == nil || rel.Info == nil {
				continue
			}
			rev := Revision{Revision: rel.Version, Status: rel.Info.Status.String(), Description: rel.Info.Description}
			if !rel.Info.LastDeployed.IsZero() {
				rev.Updated = rel.Info.LastDeployed.UTC().Format(time.RFC3339)
			}
			if rel.Chart != nil && rel.Chart.Metadata != nil {
				rev.Chart = rel.Chart.Metadata.Name + "-" + rel.Chart.Metadata.Version
				rev.AppVersion = rel.Chart.Metadata.AppVersion
			}
			res.History = append(res.History, rev)
		}
		slices.SortFunc(res.History, func(a, b Revision) int { return b.Revision - a.Revision })
		if len(res.History) > maxHistoryEntries {
			res.History = res.History[:maxHistoryEntries]
		}
		return res, nil
	}
	// The objects are only read: parsed as "gone" so that a kind the
	// cluster no longer serves reads as missing instead of failing.
	rd := &rendered{}
	if err := e.parseObjects(last.Manifest, "the current revision", false, &rd.gone); err != nil {
		return nil, r.fail(PhaseValidate, executor.Terminal(err))
	}
	if err := e.resolveObjects(rd, r.spec.Namespace, false); err != nil {
		return nil, r.fail(PhaseValidate, err)
	}
	outcomes := make([]string, len(rd.gone))
	err = e.forEach(ctx, rd.gone, func(ctx context.Context, o *object) error {
		i := slices.Index(rd.gone, o)
		if o.gvr.Resource == "" {
			outcomes[i] = OutcomeMissing
			return nil
		}
		_, err := e.meta.Resource(o.gvr).Namespace(o.u.GetNamespace()).Get(ctx, o.u.GetName(), metav1.GetOptions{})
		switch {
		case err == nil:
			outcomes[i] = OutcomePresent
		case apierrors.IsNotFound(err):
			outcomes[i] = OutcomeMissing
		default:
			return apiError("read "+o.String(), err)
		}
		return nil
	})
	if err != nil {
		return nil, r.fail(PhaseValidate, err)
	}
	for i, o := range rd.gone {
		gvk := o.u.GroupVersionKind()
		res.add(ObjectResult{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.u.GetNamespace(), Name: o.u.GetName(), Outcome: outcomes[i]})
	}
	res.sort()
	return res, nil
}
