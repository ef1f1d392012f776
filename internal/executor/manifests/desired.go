package manifests

import (
	"context"
	"fmt"
	"math"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/restmapper"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// DesiredObject is one object exactly as a manifests task applies it.
type DesiredObject struct {
	// Object is the labelled object with its namespace filled in.
	Object *unstructured.Unstructured
	// Resource is the object's resource.
	Resource schema.GroupVersionResource
	// Namespaced is true for namespaced kinds.
	Namespaced bool
}

// Desired decodes data, the bundle of spec, and returns its objects as the
// executor applies them at revision: resolved through mapper (discovery is
// refreshed once for types the mapper does not know), namespaces defaulted
// from spec.Namespace and the ownership labels set. Objects whose type the
// API server does not serve yet fail with ErrInvalidBundle; the reconciler,
// unlike a task, has no CRD to wait for.
func Desired(ctx context.Context, mapper *restmapper.DeferredDiscoveryRESTMapper, spec *taskspec.Manifests, data []byte, revision int64, lim bundle.Limits) ([]DesiredObject, error) {
	objs, err := bundle.Decode(data, lim)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("manifests: %w: %w", ErrInvalidBundle, err))
	}
	e := &Executor{mapper: mapper}
	targets, err := e.resolve(ctx, objs, spec.Namespace)
	if err != nil {
		return nil, err
	}
	out := make([]DesiredObject, 0, len(targets))
	for _, tg := range targets {
		if tg.newType {
			return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s: the API server does not serve its type yet", ErrInvalidBundle, tg))
		}
		tg.label(spec.Release, revision)
		out = append(out, DesiredObject{
			Object:     tg.obj,
			Resource:   schema.GroupVersionResource{Group: tg.ref.Group, Version: tg.ref.Version, Resource: tg.ref.Resource},
			Namespaced: tg.namespaced,
		})
	}
	return out, nil
}

// Removed is what RecordedRevision returns for a release whose objects
// must not be written again: it has no inventory (it was deleted, or never
// applied), or a delete task has started removing it.
const Removed int64 = math.MaxInt64

// RecordedRevision returns the highest revision the inventory of release in
// agentNS records: the committed one, or that of a task that started
// writing and has not committed; Removed when the release is gone or being
// deleted. A reconciler compares it with its desired revision before it
// writes, so it never undoes a newer task, pruned or deleted objects
// included.
func RecordedRevision(ctx context.Context, secrets corev1client.SecretsGetter, agentNS, release string) (int64, error) {
	inv := &inventory{secrets: secrets.Secrets(agentNS), namespace: agentNS, name: inventoryPrefix + release, release: release}
	rec, err := inv.load(ctx)
	if err != nil {
		return 0, err
	}
	if rec.rv == "" || (rec.pending != nil && rec.pending.Delete) {
		return Removed, nil
	}
	var rev int64
	if rec.committed != nil {
		rev = rec.committed.Revision
	}
	if rec.pending != nil {
		rev = max(rev, rec.pending.Revision)
	}
	return rev, nil
}
