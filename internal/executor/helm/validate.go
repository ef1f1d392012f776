package helm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/kube/access"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidChart reports a chart or a rendered object that cannot be
	// used: over a cap, malformed, or of a kind the cluster does not serve.
	ErrInvalidChart = errors.New("invalid chart")
	// ErrDenied reports a rendered object the agent's deny list rejects.
	ErrDenied = errors.New("denied by the agent's deny list")
	// ErrCollision reports existing objects the release does not own.
	ErrCollision = errors.New("objects owned by someone else")
	// ErrDryRun reports objects the API server rejected in a dry run.
	ErrDryRun = errors.New("server-side dry-run failed")
	// ErrStaleAttempt reports an attempt that a newer attempt of the same
	// task has overtaken: the newer one left the release pending.
	ErrStaleAttempt = errors.New("stale attempt")
	// ErrNotFound reports a release that does not exist where the action
	// needs one.
	ErrNotFound = errors.New("release not found")
)

// object is one rendered object and what validation learnt about it.
type object struct {
	u    *unstructured.Unstructured
	gvr  schema.GroupVersionResource
	hook bool
	// deferred is set for objects whose kind a CRD of the chart defines
	// and the cluster does not serve yet, or whose namespace the task
	// creates: they cannot be dry-run before the apply.
	deferred bool
}

func (o *object) String() string {
	s := o.u.GetKind() + " " + o.u.GetName()
	if ns := o.u.GetNamespace(); ns != "" {
		s = o.u.GetKind() + " " + ns + "/" + o.u.GetName()
	}
	return s
}

// rendered is what a release will write: its objects, hooks and CRDs.
type rendered struct {
	objects []*object
	crds    []*object
	// gone lists objects of the deployed revision the new one drops; an
	// upgrade deletes them.
	gone []*object
}

// parseObjects decodes a multi-document YAML stream of objects.
func (e *Executor) parseObjects(stream, what string, hook bool, into *[]*object) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w: %s: %w", ErrInvalidChart, what, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			err := u.EachListItem(func(item runtime.Object) error {
				iu, ok := item.(*unstructured.Unstructured)
				if !ok {
					return fmt.Errorf("%w: %s: a List item is not an object", ErrInvalidChart, what)
				}
				*into = append(*into, &object{u: iu, hook: hook})
				return e.tooMany(*into)
			})
			if err != nil {
				return err
			}
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return fmt.Errorf("%w: %s: an object without apiVersion, kind or metadata.name", ErrInvalidChart, what)
		}
		*into = append(*into, &object{u: u, hook: hook})
		if err := e.tooMany(*into); err != nil {
			return err
		}
	}
}

// tooMany reports a release with more objects than allowed.
func (e *Executor) tooMany(into []*object) error {
	if len(into) > e.opts.MaxObjects {
		return fmt.Errorf("%w: the release renders more than %d objects", ErrInvalidChart, e.opts.MaxObjects)
	}
	return nil
}

// resolve maps every object to its resource and namespace. Kinds that a
// CRD of the chart defines, and objects in a namespace the task creates,
// are deferred.
func (e *Executor) resolveObjects(r *rendered, namespace string, createNamespace bool) error {
	chartKinds := map[schema.GroupKind]bool{}
	for _, c := range r.crds {
		group, _, _ := unstructured.NestedString(c.u.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(c.u.Object, "spec", "names", "kind")
		chartKinds[schema.GroupKind{Group: group, Kind: kind}] = true
	}
	var unknown []string
	gone := map[*object]bool{}
	for _, o := range r.gone {
		gone[o] = true
	}
	all := slices.Concat(r.crds, r.objects, r.gone)
	for _, o := range all {
		gvk := o.u.GroupVersionKind()
		mapping, err := e.clients.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			if !meta.IsNoMatchError(err) {
				return fmt.Errorf("map %s: %w", o, err)
			}
			if chartKinds[gvk.GroupKind()] {
				o.deferred = true
				if o.u.GetNamespace() == "" {
					o.u.SetNamespace(namespace)
				}
				continue
			}
			if gone[o] {
				// Something to delete or read whose kind the cluster no
				// longer serves (its CRD was removed) is already gone.
				continue
			}
			unknown = append(unknown, fmt.Sprintf("%s (%s)", o, gvk.GroupVersion()))
			continue
		}
		o.gvr = mapping.Resource
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.u.GetNamespace() == "" {
				o.u.SetNamespace(namespace)
			}
			if createNamespace && o.u.GetNamespace() == namespace {
				o.deferred = true
			}
		} else {
			o.u.SetNamespace("")
		}
	}
	if len(unknown) > 0 {
		return executor.Terminal(fmt.Errorf("%w: the cluster serves no resource for %s; install the CRD first or fix the apiVersion", ErrInvalidChart, strings.Join(unknown, ", ")))
	}
	return nil
}

// checkDeny runs the agent's deny list over everything the release writes.
func (e *Executor) checkDeny(r *rendered) error {
	var denied []string
	for _, o := range slices.Concat(r.crds, r.objects) {
		if why := manifests.Denied(e.opts.Deny, e.opts.AllowPrivileged, o.u); why != "" {
			denied = append(denied, o.String()+": "+why)
		}
	}
	if len(denied) > 0 {
		return executor.Terminal(fmt.Errorf("%w: %s", ErrDenied, strings.Join(denied, "; ")))
	}
	return nil
}

// needs lists the permissions the action needs: read, create and patch
// every object; delete hooks (Helm deletes them before re-creating them)
// and what an upgrade drops; and Helm's release records in the release's
// namespace.
func needs(r *rendered, namespace string, createNamespace bool) *access.Needs {
	n := &access.Needs{}
	for _, verb := range []string{"get", "list", "create", "update", "delete"} {
		n.Add(access.Permission{Resource: "secrets", Namespace: namespace, Verb: verb}, "Helm's release records")
	}
	if createNamespace {
		for _, verb := range []string{"get", "create"} {
			n.Add(access.Permission{Resource: "namespaces", Verb: verb}, "creating the release namespace "+namespace)
		}
	}
	add := func(o *object, verbs ...string) {
		gvr := o.gvr
		if gvr.Resource == "" && !o.deferred {
			return
		}
		if gvr.Resource == "" {
			// A kind a CRD of the chart defines: its resource is the
			// CRD's plural, which the CRD object names.
			gvr = schema.GroupVersionResource{Group: o.u.GroupVersionKind().Group, Resource: pluralOf(r, o)}
		}
		for _, verb := range verbs {
			n.Add(access.Permission{Group: gvr.Group, Resource: gvr.Resource, Namespace: o.u.GetNamespace(), Verb: verb}, o.String())
		}
	}
	for _, o := range r.crds {
		add(o, "get", "create")
	}
	for _, o := range r.objects {
		if o.hook {
			add(o, "get", "create", "patch", "delete")
		} else {
			add(o, "get", "create", "patch")
		}
	}
	for _, o := range r.gone {
		add(o, "get", "delete")
	}
	return n
}

// pluralOf returns the resource name a CRD of the chart gives o's kind.
func pluralOf(r *rendered, o *object) string {
	gk := o.u.GroupVersionKind().GroupKind()
	for _, c := range r.crds {
		group, _, _ := unstructured.NestedString(c.u.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(c.u.Object, "spec", "names", "kind")
		if group == gk.Group && kind == gk.Kind {
			plural, _, _ := unstructured.NestedString(c.u.Object, "spec", "names", "plural")
			return plural
		}
	}
	return strings.ToLower(gk.Kind) + "s"
}

// validateObjects dry-runs every object that can be with server-side
// apply (dryRun=All), so the API server's validation and admission run
// before the first write, and checks ownership on the way: an object that
// exists must belong to this release (Helm's ownership annotations, which
// a chart may not set itself, so the dry run's answer shows the live
// ones), unless adopt is set; a hook that exists must carry this
// release's label, read from the live object since the dry run's answer
// carries the chart's. The dry run uses a field manager of its own: as
// Helm's manager it would drop the ownership annotations Helm's last apply
// set, and hide them. CRDs are left out of the ownership check: Helm
// installs those of crds/ when they are missing and never changes or
// deletes them. The dry run forces conflicts: fields another manager holds
// are Helm's business at apply time. It returns how many objects were
// dry-run.
func (e *Executor) validateObjects(ctx context.Context, r *rendered, release, namespace string, adopt bool) (int, error) {
	var (
		mu        sync.Mutex
		rejected  []string
		collision []string
		count     int
	)
	crds := map[*object]bool{}
	for _, o := range r.crds {
		crds[o] = true
	}
	err := e.forEach(ctx, slices.Concat(r.crds, r.objects), func(ctx context.Context, o *object) error {
		if o.deferred {
			return nil
		}
		why := ""
		if o.hook {
			live, err := e.meta.Resource(o.gvr).Namespace(o.u.GetNamespace()).Get(ctx, o.u.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return apiError(fmt.Sprintf("read %s", o), err)
			case live.GetLabels()[LabelRelease] != release:
				why = "an existing object this release's hooks would replace, without the " + LabelRelease + "=" + release + " label"
			}
		}
		data, err := json.Marshal(o.u.Object)
		if err != nil {
			return err
		}
		out, err := e.dynamic.Resource(o.gvr).Namespace(o.u.GetNamespace()).Patch(ctx, o.u.GetName(), "application/apply-patch+yaml", data,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: dryRunFieldManager, Force: ptr.To(true)})
		if err == nil && !o.hook && !crds[o] && out.GetResourceVersion() != "" {
			switch ann := out.GetAnnotations(); {
			case ann[annotationReleaseName] == release && ann[annotationReleaseNamespace] == namespace:
			case adopt:
			case ann[annotationReleaseName] != "":
				why = fmt.Sprintf("belongs to Helm release %s/%s", ann[annotationReleaseNamespace], ann[annotationReleaseName])
			default:
				why = "exists and belongs to no Helm release"
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if why != "" {
			collision = append(collision, o.String()+" "+why)
		}
		switch {
		case err == nil:
			count++
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsConflict(err):
			rejected = append(rejected, fmt.Sprintf("%s: %s", o, apiMessage(err)))
		default:
			return apiError("dry-run "+o.String(), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(collision) > 0 {
		slices.Sort(collision)
		return 0, executor.Terminal(fmt.Errorf("%w: %s; nothing was changed (set adopt to take such objects over)", ErrCollision, strings.Join(collision, "; ")))
	}
	if len(rejected) > 0 {
		slices.Sort(rejected)
		return 0, executor.Terminal(fmt.Errorf("%w: %s", ErrDryRun, strings.Join(rejected, "; ")))
	}
	return count, nil
}

// forEach runs fn on objects with at most Parallelism calls in flight.
func (e *Executor) forEach(ctx context.Context, objs []*object, fn func(context.Context, *object) error) error {
	return executor.ForEach(ctx, e.opts.Parallelism, objs, fn)
}

// apiMessage returns the API server's message for err.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// apiError wraps err from an API call, marking it terminal when a retry
// cannot help.
func apiError(op string, err error) error {
	wrapped := fmt.Errorf("%s: %w", op, err)
	if kube.PermanentAPIError(err) {
		return executor.Terminal(wrapped)
	}
	return wrapped
}
