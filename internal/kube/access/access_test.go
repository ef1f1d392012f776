package access_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/outposthq/outpost/internal/kube/access"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

var env *kubetest.Env

func TestMain(m *testing.M) { kubetest.Main(m, &env) }

// counting counts the reviews sent through it to the real API server.
type counting struct {
	authorizationclient.SelfSubjectAccessReviewsGetter
	n atomic.Int64
}

func (c *counting) SelfSubjectAccessReviews() authorizationclient.SelfSubjectAccessReviewInterface {
	return &countingReviews{SelfSubjectAccessReviewInterface: c.SelfSubjectAccessReviewsGetter.SelfSubjectAccessReviews(), n: &c.n}
}

type countingReviews struct {
	authorizationclient.SelfSubjectAccessReviewInterface
	n *atomic.Int64
}

func (c *countingReviews) Create(ctx context.Context, r *authorizationv1.SelfSubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error) {
	c.n.Add(1)
	return c.SelfSubjectAccessReviewInterface.Create(ctx, r, opts)
}

func TestChecker(t *testing.T) {
	agentNS := env.Namespace(t, "agent")
	target := env.Namespace(t, "app")
	cfg := env.AgentConfig(t, kubetest.Agent{Name: "access-agent", Namespace: agentNS, Targets: []string{target}})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reviews := &counting{SelfSubjectAccessReviewsGetter: client.AuthorizationV1()}
	now := time.Now()
	checker, err := access.NewChecker(access.CheckerOptions{Client: reviews, Remember: 30 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	allowed := &access.Needs{}
	allowed.Add(access.Permission{Resource: "configmaps", Namespace: target, Verb: "create"}, "ConfigMap web")
	allowed.Add(access.Permission{Group: "apps", Resource: "deployments", Namespace: target, Verb: "patch"}, "Deployment web")
	allowed.Add(access.Permission{Resource: "configmaps", Namespace: target, Verb: "create"}, "ConfigMap other")

	t.Run("allowed permissions are asked once each and then remembered", func(t *testing.T) {
		if err := checker.Check(t.Context(), allowed); err != nil {
			t.Fatal(err)
		}
		if n := reviews.n.Load(); n != 2 {
			t.Fatalf("%d reviews, want one per distinct permission (2)", n)
		}
		if err := checker.Check(t.Context(), allowed); err != nil {
			t.Fatal(err)
		}
		if n := reviews.n.Load(); n != 2 {
			t.Fatalf("%d reviews after a second check, want the answers remembered", n)
		}
	})

	t.Run("the memory ends", func(t *testing.T) {
		now = now.Add(31 * time.Second)
		if err := checker.Check(t.Context(), allowed); err != nil {
			t.Fatal(err)
		}
		if n := reviews.n.Load(); n != 4 {
			t.Fatalf("%d reviews, want both asked again after 30 s", n)
		}
	})

	t.Run("denials name every permission and are asked again each time", func(t *testing.T) {
		denied := &access.Needs{}
		denied.Add(access.Permission{Resource: "configmaps", Namespace: "kube-system", Verb: "create"}, "ConfigMap elsewhere")
		denied.Add(access.Permission{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Verb: "create"}, "CRD widgets")
		for range 2 {
			err := checker.Check(t.Context(), denied)
			if !errors.Is(err, access.ErrForbidden) {
				t.Fatalf("error %v, want ErrForbidden", err)
			}
			for _, want := range []string{`"create" on configmaps in namespace "kube-system" (needed for ConfigMap elsewhere)`, `"create" on customresourcedefinitions.apiextensions.k8s.io (cluster-scoped) (needed for CRD widgets)`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %s", err, want)
				}
			}
		}
		if n := reviews.n.Load(); n != 8 {
			t.Fatalf("%d reviews, want the two denials asked both times", n)
		}
	})
}
