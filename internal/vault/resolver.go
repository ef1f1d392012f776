package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Provider looks up values in one backend. Lookup returns an error wrapping
// ErrNotFound for a missing path or key, ErrVersionUnsupported for a
// version the backend cannot honour and ErrForbidden for access the backend
// refuses; the error must never contain a value.
// Implementations are safe for concurrent use.
type Provider interface {
	Lookup(ctx context.Context, ref Ref) (string, error)
}

// ResolverOptions configures a Resolver.
type ResolverOptions struct {
	// Providers maps a provider name, as written in references, to its
	// backend.
	Providers map[string]Provider
}

// Validate reports whether the options can build a Resolver.
func (o ResolverOptions) Validate() error {
	for name, p := range o.Providers {
		if !ValidProviderName(name) {
			return fmt.Errorf("vault: provider name %q: want lowercase letters, digits and '-', starting with a letter", name)
		}
		if p == nil {
			return fmt.Errorf("vault: provider %q is nil", name)
		}
	}
	return nil
}

// Resolver resolves references by dispatching to the provider each names. It
// is safe for concurrent use.
type Resolver struct {
	providers map[string]Provider
	names     string
}

// NewResolver returns a Resolver over opts.Providers. A Resolver with no
// providers is valid and fails every reference with ErrUnknownProvider.
func NewResolver(opts ResolverOptions) (*Resolver, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	providers := make(map[string]Provider, len(opts.Providers))
	names := make([]string, 0, len(opts.Providers))
	for name, p := range opts.Providers {
		providers[name] = p
		names = append(names, name)
	}
	slices.Sort(names)
	list := strings.Join(names, ", ")
	if list == "" {
		list = "none"
	}
	return &Resolver{providers: providers, names: list}, nil
}

// Resolve returns the value ref stands for. Errors read
// "vault: <ref>: <what went wrong>" and wrap the provider's sentinel.
func (r *Resolver) Resolve(ctx context.Context, ref Ref) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("vault: %s: %w", ref, err)
	}
	p, ok := r.providers[ref.Provider]
	if !ok {
		return "", fmt.Errorf("vault: %s: %w %q (configured: %s)", ref, ErrUnknownProvider, ref.Provider, r.names)
	}
	v, err := p.Lookup(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("vault: %s: %w", ref, err)
	}
	return v, nil
}

// IsPermanent reports whether err from Resolve cannot be fixed by trying
// again: a malformed reference, an unknown provider, a missing value, an
// unsupported version or access the backend forbids. Other errors (an
// unreadable vault file, a cancelled context, a network failure of a remote
// provider) may be transient.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrMalformedRef) || errors.Is(err, ErrUnknownProvider) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrVersionUnsupported) ||
		errors.Is(err, ErrForbidden)
}
