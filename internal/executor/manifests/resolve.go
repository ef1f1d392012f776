package manifests

import (
	"context"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/internal/kube"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
)

// maxListed caps the failures one error lists.
const maxListed = 10

// target is one object of the bundle on its way to the cluster.
type target struct {
	src        bundle.Object
	obj        *unstructured.Unstructured
	ref        Ref
	namespaced bool
	// newType: the bundle's own CRD defines the type, which the API
	// server does not serve yet, so its dry-run waits for the CRD.
	newType bool
	// deferred: dry-run after the foundation objects are applied.
	deferred bool

	// live: the object exists now. existed and rv come from the pending
	// snapshot of an earlier attempt when there is one, so outcomes are
	// reported as the first attempt saw them.
	live    bool
	existed bool
	rv      string
	skip    string
	adopted bool
	// seen is what observe read of the live object, nil if none.
	seen *liveMeta
	// noop: the dry-run showed that applying it changes nothing, so it is
	// not applied again (see unchanged).
	noop bool

	outcome string
	reason  string
}

func (tg *target) String() string { return tg.ref.String() + " (" + tg.src.Position() + ")" }

// label adds the ownership labels and drops the metadata the server owns,
// which would otherwise turn an apply into a precondition.
func (tg *target) label(release string, revision int64) {
	labels := tg.obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[kube.LabelManagedBy] = kube.ManagedBy
	labels[LabelRelease] = release
	labels[LabelRevision] = fmt.Sprint(revision)
	tg.obj.SetLabels(labels)
	meta := tg.obj.Object["metadata"].(map[string]any)
	for _, f := range []string{"resourceVersion", "uid", "selfLink", "creationTimestamp", "generation", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		delete(meta, f)
	}
}

// crdInfo is what a CRD of the bundle says about its type.
type crdInfo struct {
	plural     string
	namespaced bool
	versions   map[string]bool
}

// bundleCRDs indexes the CustomResourceDefinitions of a bundle by group
// and kind.
func bundleCRDs(objs []bundle.Object) map[schema.GroupKind]crdInfo {
	out := map[schema.GroupKind]crdInfo{}
	for _, o := range objs {
		gvk := o.Obj.GroupVersionKind()
		if gvk.Group != "apiextensions.k8s.io" || gvk.Kind != "CustomResourceDefinition" {
			continue
		}
		u := o.Obj.Object
		group, _, _ := unstructured.NestedString(u, "spec", "group")
		kind, _, _ := unstructured.NestedString(u, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(u, "spec", "names", "plural")
		scope, _, _ := unstructured.NestedString(u, "spec", "scope")
		versions, _, _ := unstructured.NestedSlice(u, "spec", "versions")
		if group == "" || kind == "" || plural == "" {
			// The dry-run names what is missing.
			continue
		}
		info := crdInfo{plural: plural, namespaced: scope != "Cluster", versions: map[string]bool{}}
		for _, v := range versions {
			m, _ := v.(map[string]any)
			name, _ := m["name"].(string)
			if served, _ := m["served"].(bool); served && name != "" {
				info.versions[name] = true
			}
		}
		out[schema.GroupKind{Group: group, Kind: kind}] = info
	}
	return out
}

// resolve maps every object to its resource and scope, fills in default
// namespaces and rejects objects given twice. Discovery is cached; it is
// refreshed once when the bundle names a type the cache does not know.
func (e *Executor) resolve(ctx context.Context, objs []bundle.Object, defaultNS string) ([]*target, error) {
	targets := make([]*target, len(objs))
	var missing []int
	for i, o := range objs {
		targets[i] = &target{src: o, obj: o.Obj}
		found, err := e.mapOne(ctx, targets[i])
		if err != nil {
			return nil, err
		}
		if !found {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		e.mapper.Reset()
		crds := bundleCRDs(objs)
		var unknown []string
		for _, i := range missing {
			tg := targets[i]
			found, err := e.mapOne(ctx, tg)
			if err != nil {
				return nil, err
			}
			if found {
				continue
			}
			gvk := tg.obj.GroupVersionKind()
			info, ok := crds[gvk.GroupKind()]
			if !ok || !info.versions[gvk.Version] {
				unknown = append(unknown, fmt.Sprintf("%s %s (%s): the API server does not serve %s and no CustomResourceDefinition of the bundle defines it", gvk.Kind, tg.obj.GetName(), tg.src.Position(), gvk.GroupVersion().WithKind(gvk.Kind)))
				continue
			}
			tg.ref = Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Resource: info.plural}
			tg.namespaced, tg.newType = info.namespaced, true
		}
		if len(unknown) > 0 {
			return nil, executor.Terminal(fmt.Errorf("manifests: %w: unknown types: %s", ErrInvalidBundle, list(unknown)))
		}
	}
	seen := make(map[string]*target, len(targets))
	for _, tg := range targets {
		if tg.namespaced {
			if tg.obj.GetNamespace() == "" {
				if defaultNS == "" {
					return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s %s (%s) is namespaced and names no namespace: set metadata.namespace or the spec's namespace", ErrInvalidBundle, tg.ref.Kind, tg.obj.GetName(), tg.src.Position()))
				}
				tg.obj.SetNamespace(defaultNS)
			}
		} else if tg.obj.GetNamespace() != "" {
			// Cluster-scoped objects have no namespace; like kubectl, the
			// executor ignores one given by mistake.
			tg.obj.SetNamespace("")
		}
		tg.ref.Namespace, tg.ref.Name = tg.obj.GetNamespace(), tg.obj.GetName()
		if prev, dup := seen[tg.ref.key()]; dup {
			return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s is given twice, first in %s; remove one", ErrInvalidBundle, tg, prev.src.Position()))
		}
		seen[tg.ref.key()] = tg
	}
	return targets, nil
}

// mapOne resolves tg through discovery; found is false when discovery does
// not know the type.
func (e *Executor) mapOne(ctx context.Context, tg *target) (found bool, err error) {
	gvk := tg.obj.GroupVersionKind()
	m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		return false, apiError(ctx, "discover the resource of", fmt.Sprintf("%s (%s)", gvk, tg.src.Position()), err)
	}
	tg.ref = Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Resource: m.Resource.Resource}
	tg.namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
	return true, nil
}

// checkDeny applies the agent's deny list to every object.
func (e *Executor) checkDeny(targets []*target) error {
	var denied []string
	for _, tg := range targets {
		if why := checkDeny(e.deny, e.allowPriv, tg.obj); why != "" {
			denied = append(denied, tg.String()+": "+why)
		}
	}
	if len(denied) > 0 {
		return executor.Terminal(fmt.Errorf("manifests: %w: %s; the agent's operator sets the deny list, a task cannot relax it", ErrDenied, list(denied)))
	}
	return nil
}

// list joins up to maxListed entries and counts the rest.
func list(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:maxListed], "; ") + fmt.Sprintf("; and %d more", len(items)-maxListed)
}
