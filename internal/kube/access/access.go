package access

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// ErrForbidden reports permissions the agent's identity lacks.
var ErrForbidden = errors.New("missing permission")

// DefaultParallelism bounds the reviews in flight when CheckerOptions give 0.
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

// Checker asks the API server whether the agent may use permissions. It
// remembers allowed answers for a while, so a burst of tasks on the same
// kinds of objects asks once; denials are never remembered, so a
// permission granted after a failure is seen by the next task. A permission
// revoked within the memory is not seen before it is used: the API call
// itself is then refused, after validation. It is safe for concurrent use.
type Checker struct {
	client   authorizationclient.SelfSubjectAccessReviewsGetter
	parallel int
	ttl      time.Duration
	now      func() time.Time

	mu      sync.Mutex
	allowed map[Permission]time.Time
}

// CheckerOptions configures a Checker.
type CheckerOptions struct {
	// Client asks the reviews. Required.
	Client authorizationclient.SelfSubjectAccessReviewsGetter
	// Parallelism bounds the reviews in flight; 0 means
	// DefaultParallelism.
	Parallelism int
	// Remember is how long an allowed answer is reused; 0 asks every
	// time.
	Remember time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate checks the options and fills defaults.
func (o *CheckerOptions) Validate() error {
	if o.Client == nil {
		return errors.New("access: Client is required")
	}
	if o.Parallelism < 0 || o.Remember < 0 {
		return errors.New("access: Parallelism and Remember may not be negative")
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// NewChecker returns a Checker.
func NewChecker(opts CheckerOptions) (*Checker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Checker{client: opts.Client, parallel: opts.Parallelism, ttl: opts.Remember, now: opts.Now, allowed: map[Permission]time.Time{}}, nil
}

// Check asks one SelfSubjectAccessReview per distinct permission not
// remembered as allowed. It returns nil when all are allowed, an error
// wrapping ErrForbidden that lists every denied permission with its
// reason, or the error of a review that failed.
func (c *Checker) Check(ctx context.Context, needs *Needs) error {
	var ask []Permission
	now := c.now()
	c.mu.Lock()
	for _, p := range needs.order {
		if until, ok := c.allowed[p]; !ok || !now.Before(until) {
			ask = append(ask, p)
		}
	}
	c.mu.Unlock()
	var (
		mu     sync.Mutex
		denied []Permission
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.parallel)
	for _, p := range ask {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: p.Namespace, Verb: p.Verb, Group: p.Group, Resource: p.Resource},
			}}
			out, err := c.client.SelfSubjectAccessReviews().Create(gctx, review, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("access: check %s: %w", p, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !out.Status.Allowed {
				denied = append(denied, p)
			} else if c.ttl > 0 {
				c.mu.Lock()
				c.allowed[p] = now.Add(c.ttl)
				c.mu.Unlock()
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
