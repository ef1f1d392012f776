package manifests

import (
	"context"
	"fmt"
	"slices"

	"github.com/outposthq/outpost/internal/kube"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

// owner says whether labels mark an object as this release's, and when
// they do not, why: the reason reported for a skipped object.
func owner(labels map[string]string, release string) (ours bool, why string) {
	if labels[kube.LabelManagedBy] == kube.ManagedBy && labels[LabelRelease] == release {
		return true, ""
	}
	if labels[kube.LabelManagedBy] == kube.ManagedBy && labels[LabelRelease] != "" {
		return false, fmt.Sprintf("owned by release %s", labels[LabelRelease])
	}
	return false, fmt.Sprintf("exists and is not managed by outpost release %s", release)
}

// meta reads only the metadata of objects: labels, resourceVersion and
// UID are all collision defense and prune need.
func (e *Executor) meta(ref Ref) metadata.ResourceInterface {
	ri := e.metadata.Resource(ref.gvr())
	if ref.Namespace != "" {
		return ri.Namespace(ref.Namespace)
	}
	return ri
}

func (e *Executor) resource(ref Ref) dynamic.ResourceInterface {
	ri := e.dynamic.Resource(ref.gvr())
	if ref.Namespace != "" {
		return ri.Namespace(ref.Namespace)
	}
	return ri
}

func (r Ref) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

// observe reads every target and prune candidate (collision defense): an
// existing target that does not carry this release's labels is skipped
// unless the task adopts it. A resource with several objects in one
// namespace is read with one metadata LIST where the agent may list it,
// the others with a metadata GET each. A reused snapshot supplies what the
// first attempt saw, so outcomes stay as that attempt would have reported
// them.
func (e *Executor) observe(ctx context.Context, r *run) error {
	var snapTargets, snapPrune map[string]snapshot
	if r.snap != nil {
		snapTargets, snapPrune = indexSnapshots(r.snap.Targets), indexSnapshots(r.snap.Prune)
	}
	fromList, err := e.listAll(ctx, r)
	if err != nil {
		return err
	}
	err = forEach(ctx, e.parallel, r.targets, func(ctx context.Context, tg *target) error {
		live, err := e.readLive(ctx, tg.ref, fromList)
		if err != nil {
			return apiError(ctx, "read", tg.String(), err)
		}
		tg.seen, tg.live = live, live != nil
		if tg.live {
			tg.existed, tg.rv = true, live.rv
			if ours, why := owner(live.labels, r.spec.Release); !ours {
				if r.spec.Adopt {
					tg.adopted = true
				} else {
					tg.skip = why
				}
			}
		}
		if s, ok := snapTargets[tg.ref.key()]; ok {
			tg.existed, tg.rv = s.Existed, s.ResourceVersion
			tg.adopted = tg.adopted || s.Adopted
			if s.Skip != "" {
				tg.skip = s.Skip
			}
			if tg.adopted {
				tg.skip = ""
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	newNamespaces := map[string]bool{}
	for _, tg := range r.targets {
		if tg.ref.Group == "" && tg.ref.Kind == "Namespace" && !tg.live && tg.skip == "" {
			newNamespaces[tg.ref.Name] = true
		}
	}
	for _, tg := range r.targets {
		tg.deferred = tg.newType || tg.namespaced && newNamespaces[tg.ref.Namespace]
	}
	err = forEach(ctx, e.parallel, r.prune, func(ctx context.Context, p *pruneItem) error {
		if s, ok := snapPrune[p.ref.key()]; ok {
			p.snap = s
			return nil
		}
		live, err := e.readLive(ctx, p.ref, fromList)
		switch {
		case err != nil:
			return apiError(ctx, "read prune candidate", p.ref.String(), err)
		case live == nil:
			return nil
		}
		p.snap.Existed, p.snap.ResourceVersion, p.snap.UID = true, live.rv, live.uid
		p.snap.Owned, _ = owner(live.labels, r.spec.Release)
		return nil
	})
	if err != nil {
		return err
	}
	// What an unfinished task meant to write but never did is no object
	// of the release.
	r.prune = slices.DeleteFunc(r.prune, func(p *pruneItem) bool { return p.unfinished && !p.snap.Existed })
	return nil
}

func indexSnapshots(s []snapshot) map[string]snapshot {
	m := make(map[string]snapshot, len(s))
	for _, x := range s {
		m[x.key()] = x
	}
	return m
}

// ownedNow re-reads an object right before it is deleted.
func (e *Executor) ownedNow(ctx context.Context, ref Ref, release string) (*metav1.PartialObjectMetadata, bool, string, error) {
	live, err := e.meta(ref).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, "", nil
	}
	if err != nil {
		return nil, false, "", apiError(ctx, "read prune candidate", ref.String(), err)
	}
	ours, why := owner(live.GetLabels(), release)
	return live, ours, why, nil
}
