package access

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// ErrForbidden reports permissions the agent's identity lacks.
var ErrForbidden = errors.New("missing permission")

// DefaultParallelism bounds the reviews in flight when Check is given 0.
const DefaultParallelism = 16

// Permission is one verb on one resource in one namespace ("" for
// cluster-scoped resources).
type Permission struct {
	Group, Resource, Namespace, Verb string
}

// String reads `"create" on deployments.apps in namespace "shop"`.
func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	if p.Namespace == "" {
		return fmt.Sprintf("%q on %s (cluster-scoped)", p.Verb, res)
	}
	return fmt.Sprintf("%q on %s in namespace %q", p.Verb, res, p.Namespace)
}

// Needs collects the permissions a task needs, each with the first reason
// given for it, in the order they were first added.
type Needs struct {
	why   map[Permission]string
	order []Permission
}

// Add records that p is needed for why; a permission added twice keeps its
// first reason.
func (n *Needs) Add(p Permission, why string) {
	if n.why == nil {
		n.why = map[Permission]string{}
	}
	if _, ok := n.why[p]; ok {
		return
	}
	n.why[p] = why
	n.order = append(n.order, p)
}

// Len returns the number of distinct permissions.
func (n *Needs) Len() int { return len(n.order) }

// Check asks one SelfSubjectAccessReview per distinct permission, at most
// parallel at once (0: DefaultParallelism). It returns nil when all are
// allowed, an error wrapping ErrForbidden that lists every denied
// permission with its reason, or the error of a review that failed.
func Check(ctx context.Context, client authorizationclient.SelfSubjectAccessReviewsGetter, needs *Needs, parallel int) error {
	if parallel <= 0 {
		parallel = DefaultParallelism
	}
	var (
		mu     sync.Mutex
		denied []Permission
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, p := range needs.order {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: p.Namespace, Verb: p.Verb, Group: p.Group, Resource: p.Resource},
			}}
			out, err := client.SelfSubjectAccessReviews().Create(gctx, review, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("access: check %s: %w", p, err)
			}
			if !out.Status.Allowed {
				mu.Lock()
				denied = append(denied, p)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("access: stopped: %w", err)
	}
	if len(denied) == 0 {
		return nil
	}
	slices.SortFunc(denied, func(a, b Permission) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Verb, b.Verb))
	})
	msgs := make([]string, len(denied))
	for i, p := range denied {
		msgs[i] = fmt.Sprintf("%s (needed for %s)", p, needs.why[p])
	}
	return fmt.Errorf("%w: the agent may not use %s; grant these in the agent's Role or ClusterRole", ErrForbidden, strings.Join(msgs, "; "))
}
