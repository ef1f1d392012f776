package k8ssecret

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/outposthq/outpost/internal/vault"
)

// ProviderName is the provider name the Provider is registered under:
// vault://k8s/<secret>/<key>.
const ProviderName = "k8s"

// Options configures a Provider.
type Options struct {
	// Client reads Secrets; a clientset's CoreV1() satisfies it. Only
	// Secrets(Namespace).Get is called. Required.
	Client corev1client.SecretsGetter
	// Namespace is the agent's own namespace, the only one read. Required.
	Namespace string
}

// Validate reports whether the options can build a Provider.
func (o Options) Validate() error {
	if o.Client == nil {
		return errors.New("vault: k8s: client is required")
	}
	if o.Namespace == "" {
		return errors.New("vault: k8s: namespace is required")
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("vault: k8s: namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	return nil
}

// Provider is a vault.Provider that reads keys of Secrets in one namespace.
// Every Lookup reads the Secret again, so rotation takes effect at once.
// Versions are not supported: a Secret keeps only its current data.
// Provider is safe for concurrent use.
type Provider struct {
	secrets   corev1client.SecretsGetter
	namespace string
}

var _ vault.Provider = (*Provider)(nil)

// New returns a Provider. It makes no request until the first lookup, so it
// needs no permission that a task does not use.
func New(opts Options) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Provider{secrets: opts.Client, namespace: opts.Namespace}, nil
}

// Lookup returns the value of ref.Key in the Secret named ref.Path in the
// provider's namespace. ref.Path must be a single segment that is a valid
// Secret name (else vault.ErrMalformedRef) and ref.Version must be 0 (else
// vault.ErrVersionUnsupported). A missing Secret or key wraps
// vault.ErrNotFound; a request the API server forbids wraps
// vault.ErrForbidden. Errors name the Secret, key and namespace, never the
// value.
func (p *Provider) Lookup(ctx context.Context, ref vault.Ref) (string, error) {
	if err := checkName(ref.Path); err != nil {
		return "", err
	}
	if ref.Version != 0 {
		return "", &lookupError{
			msg:  fmt.Sprintf("versions are not supported by the k8s provider, a Secret keeps only its current data; drop the /v%d suffix", ref.Version),
			kind: vault.ErrVersionUnsupported,
		}
	}
	sec, err := p.secrets.Secrets(p.namespace).Get(ctx, ref.Path, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", &lookupError{
			msg:  fmt.Sprintf("Secret %q not found in namespace %q (the agent's namespace)", ref.Path, p.namespace),
			kind: vault.ErrNotFound,
		}
	case apierrors.IsForbidden(err):
		return "", &lookupError{
			msg: fmt.Sprintf("reading Secret %q in namespace %q is forbidden: the agent's service account lacks \"get\" on secrets in %q; "+
				"grant it with a Role there (resourceNames may list just the Secrets tasks reference): %v", ref.Path, p.namespace, p.namespace, err),
			kind:  vault.ErrForbidden,
			cause: err,
		}
	case err != nil:
		return "", fmt.Errorf("read Secret %q in namespace %q: %w", ref.Path, p.namespace, err)
	}
	v, ok := sec.Data[ref.Key]
	if !ok {
		return "", &lookupError{
			msg:  fmt.Sprintf("key %q not found in Secret %q in namespace %q", ref.Key, ref.Path, p.namespace),
			kind: vault.ErrNotFound,
		}
	}
	return string(v), nil
}

// checkName reports a path that cannot name a Secret. The grammar allows
// nested paths, uppercase and '_', which Secret names do not; a nested path
// would also be the only way to smuggle in a namespace, so it is refused
// rather than read.
func checkName(path string) error {
	if strings.Contains(path, "/") {
		return &lookupError{
			msg: fmt.Sprintf("path %q: the k8s provider takes one path segment, the Secret's name, and always reads the agent's namespace; "+
				"want vault://k8s/<secret>/<key>", path),
			kind: vault.ErrMalformedRef,
		}
	}
	if errs := validation.IsDNS1123Subdomain(path); len(errs) > 0 {
		return &lookupError{
			msg:  fmt.Sprintf("path %q is not a valid Secret name: %s", path, strings.Join(errs, "; ")),
			kind: vault.ErrMalformedRef,
		}
	}
	return nil
}
