package manifests

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube/access"
)

// permission is one verb on one resource in one namespace ("" for
// cluster-scoped resources).
type permission = access.Permission

// checkAccess asks the API server, with one SelfSubjectAccessReview per
// distinct permission, whether the agent may do everything the task needs:
// get, create and patch every object of the bundle, get and delete every
// prune candidate, and read and write the release's inventory (a delete
// task: get and delete every object of the release, and read, update and
// delete the inventory). In the same
// batch it asks whether the agent may list the resources observe would
// rather LIST than GET one by one, and records the answers in r.mayList; a
// task never needs list, so a denied list only means GETs.
func (e *Executor) checkAccess(ctx context.Context, r *run) error {
	needs := map[permission]string{}
	var order []permission
	need := func(p permission, why string) {
		if _, ok := needs[p]; !ok {
			needs[p] = why
			order = append(order, p)
		}
	}
	invVerbs, deleting, remedy := []string{"get", "create", "update"}, "pruning ", "grant these in the agent's Role or ClusterRole, or remove the objects from the bundle"
	if r.spec.Delete {
		invVerbs, deleting, remedy = []string{"get", "update", "delete"}, "deleting ", "grant these in the agent's Role or ClusterRole"
	}
	for _, verb := range invVerbs {
		need(permission{Resource: "secrets", Namespace: r.inv.namespace, Verb: verb}, "the release inventory "+r.inv.String())
	}
	for _, tg := range r.targets {
		for _, verb := range []string{"get", "create", "patch"} {
			need(permission{Group: tg.ref.Group, Resource: tg.ref.Resource, Namespace: tg.ref.Namespace, Verb: verb}, tg.String())
		}
	}
	for _, p := range r.prune {
		for _, verb := range []string{"get", "delete"} {
			need(permission{Group: p.ref.Group, Resource: p.ref.Resource, Namespace: p.ref.Namespace, Verb: verb}, deleting+p.ref.String())
		}
	}
	optional := map[permission][]listKey{}
	for _, k := range listGroups(r.reads()) {
		p := k.permission()
		if optional[p] == nil {
			order = append(order, p)
		}
		optional[p] = append(optional[p], k)
	}
	r.mayList = make(map[listKey]bool, len(optional))
	var mu sync.Mutex
	var denied []permission
	err := forEach(ctx, e.parallel, order, func(ctx context.Context, p permission) error {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: p.Namespace, Verb: p.Verb, Group: p.Group, Resource: p.Resource},
		}}
		out, err := e.access.SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return apiError(ctx, "check permission", p.String(), err)
		}
		mu.Lock()
		defer mu.Unlock()
		switch keys, opt := optional[p]; {
		case opt:
			for _, k := range keys {
				r.mayList[k] = out.Status.Allowed
			}
		case !out.Status.Allowed:
			denied = append(denied, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(denied) == 0 {
		return nil
	}
	slices.SortFunc(denied, func(a, b permission) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Verb, b.Verb))
	})
	msgs := make([]string, len(denied))
	for i, p := range denied {
		msgs[i] = fmt.Sprintf("%s (needed for %s)", p, needs[p])
	}
	return executor.Terminal(fmt.Errorf("manifests: %w: the agent may not use %s; %s", ErrForbidden, list(msgs), remedy))
}
