package reconcile

import (
	"context"
	"errors"
	"fmt"

	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	rspb "helm.sh/helm/v4/pkg/release/v1"

	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/kube"
)

// Helm's ownership metadata, which it sets on every object it applies
// (action.setMetadataVisitor): a correction must send it too, or the apply
// would take it away.
const (
	helmManagedBy             = "Helm"
	helmAnnotationReleaseName = "meta.helm.sh/release-name"
	helmAnnotationReleaseNS   = "meta.helm.sh/release-namespace"
)

// objKey names an object by resource, namespace and name.
type objKey struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (k objKey) String() string {
	res := k.gvr.Resource
	if k.gvr.Group != "" {
		res += "." + k.gvr.Group
	}
	if k.namespace == "" {
		return res + " " + k.name
	}
	return res + " " + k.namespace + "/" + k.name
}

// watchKey names one informer: a resource in a namespace ("" for
// cluster-scoped resources).
type watchKey struct {
	gvr       schema.GroupVersionResource
	namespace string
}

// desiredObject is one object as the release's executor applies it.
type desiredObject struct {
	key objKey
	obj *unstructured.Unstructured
}

// desiredState is the desired objects of a release and, for helm, the
// Helm revision they come from.
type desiredState struct {
	objects     []desiredObject
	helmVersion int
}

// desired computes the objects of rel exactly as its executor applies
// them.
func (r *Reconciler) desired(ctx context.Context, rel *Release) (*desiredState, error) {
	if rel.Kind == KindHelm {
		return r.helmDesired(ctx, rel)
	}
	objs, err := manifests.Desired(ctx, r.mapper, rel.Manifests, rel.bundle(), rel.Revision, bundle.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%w: release %s: %w", ErrDesiredState, rel.Name, err)
	}
	out := &desiredState{objects: make([]desiredObject, len(objs))}
	for i, o := range objs {
		out.objects[i] = desiredObject{key: objKey{gvr: o.Resource, namespace: o.Object.GetNamespace(), name: o.Object.GetName()}, obj: o.Object}
	}
	return out, nil
}

// helmRelease returns the latest deployed record of a
// Helm release.
func (r *Reconciler) helmRelease(rel *Release) (*rspb.Release, error) {
	d := driver.NewSecrets(r.kube.CoreV1().Secrets(rel.Helm.Namespace))
	d.SetLogger(r.helmLog.Handler())
	st := storage.Init(d)
	rls, err := st.Deployed(rel.Helm.ReleaseName)
	if errors.Is(err, driver.ErrNoDeployedReleases) || errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("%w: release %s: Helm release %s/%s has no deployed revision", ErrDesiredState, rel.Name, rel.Helm.Namespace, rel.Helm.ReleaseName)
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: release %s: read Helm release %s/%s: %w", rel.Name, rel.Helm.Namespace, rel.Helm.ReleaseName, err)
	}
	hr, ok := rls.(*rspb.Release)
	if !ok || hr == nil {
		return nil, fmt.Errorf("%w: release %s: unexpected Helm release type %T", ErrDesiredState, rel.Name, rls)
	}
	return hr, nil
}

// helmDesired reads the manifest of the latest deployed revision of a
// Helm release and returns its objects as the helm executor applies them:
// namespaced objects default to the release namespace, each carries the
// outpost.dev/release label and Helm's ownership metadata. Hooks are not
// part of the manifest and are not reconciled.
func (r *Reconciler) helmDesired(ctx context.Context, rel *Release) (*desiredState, error) {
	hr, err := r.helmRelease(rel)
	if err != nil {
		return nil, err
	}
	objs, err := bundle.Decode([]byte(hr.Manifest), bundle.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%w: release %s: Helm manifest of revision %d: %w", ErrDesiredState, rel.Name, hr.Version, err)
	}
	ns := rel.Helm.Namespace
	out := &desiredState{helmVersion: hr.Version}
	for _, o := range objs {
		u := o.Obj
		gvk := u.GroupVersionKind()
		m, err := r.mapping(gvk)
		if err != nil {
			return nil, fmt.Errorf("%w: release %s: %s: %w", ErrDesiredState, rel.Name, o, err)
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if u.GetNamespace() == "" {
				u.SetNamespace(ns)
			}
		} else {
			u.SetNamespace("")
		}
		if gvk.Group == "" && gvk.Kind == "Namespace" && u.GetName() == ns {
			// The helm executor leaves the release's own namespace
			// unlabelled (see tracker.Build); it is not watched.
			continue
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[manifests.LabelRelease] = rel.Helm.ReleaseName
		labels[kube.LabelManagedBy] = helmManagedBy
		u.SetLabels(labels)
		ann := u.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[helmAnnotationReleaseName] = rel.Helm.ReleaseName
		ann[helmAnnotationReleaseNS] = ns
		u.SetAnnotations(ann)
		out.objects = append(out.objects, desiredObject{key: objKey{gvr: m.Resource, namespace: u.GetNamespace(), name: u.GetName()}, obj: u})
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return out, nil
}

// mapping resolves gvk, refreshing discovery once on a miss.
func (r *Reconciler) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		r.mapper.Reset()
		m, err = r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	return m, err
}
