package manifests

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Reading live objects in batches.
const (
	// listMin is the fewest objects of one resource in one namespace that
	// observe reads with one metadata LIST rather than a GET each.
	listMin = 4
	// listPageSize bounds the items of one page of a LIST, and with it the
	// memory a LIST holds at a time: only what is kept of the objects
	// sought outlives its page.
	listPageSize = 500
	// listBudget bounds a LIST in a crowded namespace: once it has read
	// this many items per object sought, the objects not yet found are
	// read one by one.
	listBudget = 20
)

// listKey names the objects of one resource in one namespace ("" for
// cluster-scoped resources).
type listKey struct {
	gvr       schema.GroupVersionResource
	namespace string
}

func listKeyOf(ref Ref) listKey { return listKey{gvr: ref.gvr(), namespace: ref.Namespace} }

func (k listKey) String() string {
	res := k.gvr.Resource
	if k.gvr.Group != "" {
		res += "." + k.gvr.Group
	}
	if k.namespace == "" {
		return res
	}
	return res + " in namespace " + k.namespace
}

func (k listKey) permission() permission {
	return permission{Group: k.gvr.Group, Resource: k.gvr.Resource, Namespace: k.namespace, Verb: "list"}
}

// objKey names one object of a listKey.
type objKey struct {
	listKey
	name string
}

func objKeyOf(ref Ref) objKey { return objKey{listKey: listKeyOf(ref), name: ref.Name} }

// reads returns the objects observe reads, by resource and namespace: the
// targets, and the prune candidates a reused snapshot does not describe.
func (r *run) reads() map[listKey]map[string]bool {
	out := map[listKey]map[string]bool{}
	add := func(ref Ref) {
		k := listKeyOf(ref)
		if out[k] == nil {
			out[k] = map[string]bool{}
		}
		out[k][ref.Name] = true
	}
	for _, tg := range r.targets {
		add(tg.ref)
	}
	var snapped map[string]snapshot
	if r.snap != nil {
		snapped = indexSnapshots(r.snap.Prune)
	}
	for _, p := range r.prune {
		if _, ok := snapped[p.ref.key()]; !ok {
			add(p.ref)
		}
	}
	return out
}

// listGroups returns the groups of reads worth a LIST.
func listGroups(reads map[listKey]map[string]bool) []listKey {
	var out []listKey
	for k, names := range reads {
		if len(names) >= listMin {
			out = append(out, k)
		}
	}
	return out
}

// listed is what the LISTs of observe found: an object listed with a nil
// value does not exist; one not listed is read with a GET.
type listed map[objKey]*liveMeta

// listAll lists, in parallel, every group of reads the agent may list.
func (e *Executor) listAll(ctx context.Context, r *run) (listed, error) {
	reads := r.reads()
	var groups []listKey
	for _, k := range listGroups(reads) {
		if r.mayList[k] {
			groups = append(groups, k)
		}
	}
	out := listed{}
	var mu sync.Mutex
	err := forEach(ctx, e.parallel, groups, func(ctx context.Context, k listKey) error {
		found, complete, err := e.list(ctx, k, reads[k])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for name := range reads[k] {
			lm, ok := found[name]
			if ok || complete {
				out[objKey{listKey: k, name: name}] = lm
			}
		}
		return nil
	})
	return out, err
}

// list reads the metadata of the objects of k named in names, a page at a
// time, keeping only those. complete says every object of k was seen, so
// a name not found does not exist; otherwise the names not found are to be
// read one by one (the LIST was refused, expired or ran over its budget).
func (e *Executor) list(ctx context.Context, k listKey, names map[string]bool) (found map[string]*liveMeta, complete bool, err error) {
	ri := e.metadata.Resource(k.gvr)
	opts := metav1.ListOptions{Limit: int64(e.listPage)}
	found = make(map[string]*liveMeta, len(names))
	scanned := 0
	for {
		var list *metav1.PartialObjectMetadataList
		if k.namespace != "" {
			list, err = ri.Namespace(k.namespace).List(ctx, opts)
		} else {
			list, err = ri.List(ctx, opts)
		}
		switch {
		case apierrors.IsNotFound(err) && opts.Continue == "":
			// The resource is not served (yet): none of its objects exists.
			return found, true, nil
		case apierrors.IsForbidden(err) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			// The GETs are allowed (checked) and always consistent.
			return found, false, nil
		case err != nil:
			return nil, false, apiError(ctx, "list", k.String(), err)
		}
		for i := range list.Items {
			it := &list.Items[i]
			if names[it.Name] {
				found[it.Name] = newLiveMeta(&it.ObjectMeta)
			}
		}
		scanned += len(list.Items)
		switch {
		case list.Continue == "":
			return found, true, nil
		case len(found) == len(names), scanned >= e.listBudget*len(names):
			return found, false, nil
		}
		opts.Continue = list.Continue
	}
}

// readLive returns what is live of ref: from the LISTs when they covered
// it, else with a metadata GET. It returns nil when ref does not exist.
func (e *Executor) readLive(ctx context.Context, ref Ref, from listed) (*liveMeta, error) {
	if lm, ok := from[objKeyOf(ref)]; ok {
		return lm, nil
	}
	obj, err := e.meta(ref).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return newLiveMeta(&obj.ObjectMeta), nil
}
