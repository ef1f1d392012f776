package sealk8s

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"

	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/seal"
)

const (
	// SecretType is the type of the Secret holding an environment's keys.
	SecretType corev1.SecretType = "outpost.dev/environment-key" //nolint:gosec // a Secret type name, not a credential
	// DefaultName is the Secret's name when Options.Name is empty.
	DefaultName = "outpost-environment-key"
	// AnnotationEnvironment names the environment on the Secret, for
	// operators; the Secret's data is what the Store trusts.
	AnnotationEnvironment = "outpost.dev/environment"
)

// ErrForeignSecret reports a Secret under the Store's name that Outpost did
// not write as an environment key: another type or no managed-by label. The
// Store leaves it untouched; rename or remove it, or configure another name.
var ErrForeignSecret = errors.New("sealk8s: secret is not an Outpost environment key")

// Options configures a Store.
type Options struct {
	// Client reads and writes Secrets; a clientset's CoreV1() satisfies
	// it. Only Get, Create and Update in Namespace are called. Required.
	Client corev1client.SecretsGetter
	// Namespace is the agent's own namespace. Required.
	Namespace string
	// Name is the Secret's name; DefaultName when empty.
	Name string
}

// Validate reports whether the options can build a Store.
func (o Options) Validate() error {
	if o.Client == nil {
		return errors.New("sealk8s: client is required")
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("sealk8s: namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	if o.Name != "" {
		if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
			return fmt.Errorf("sealk8s: name %q: %s", o.Name, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Store keeps one environment's keyring in one Secret. It holds no state
// between calls, so every call sees the Secret as it is now; it is safe for
// concurrent use, also from several replicas.
type Store struct {
	secrets   corev1client.SecretsGetter
	namespace string
	name      string
}

// New returns a Store. It makes no request.
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	return &Store{secrets: opts.Client, namespace: opts.Namespace, name: name}, nil
}

// LoadOrCreate returns env's keyring from the Secret, creating the Secret
// with a new version 1 key when there is none; created reports that this
// call created it. When another caller creates it first, its key is used.
// A Secret that is foreign (ErrForeignSecret) or holds another
// environment's key (seal.ErrWrongEnvironment) is refused and left as is.
func (s *Store) LoadOrCreate(ctx context.Context, env string) (kr *seal.Keyring, created bool, err error) {
	kr, err = s.load(ctx, env)
	if err == nil || !apierrors.IsNotFound(err) {
		return kr, false, err
	}
	key, err := seal.GenerateKey(env, 1)
	if err != nil {
		return nil, false, err
	}
	kr, err = seal.NewKeyring(key)
	if err != nil {
		return nil, false, err
	}
	data := seal.EncodeKeyring(kr)
	defer wipeData(data)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        s.name,
			Namespace:   s.namespace,
			Labels:      map[string]string{kube.LabelManagedBy: kube.ManagedBy},
			Annotations: map[string]string{AnnotationEnvironment: env},
		},
		Type: SecretType,
		Data: data,
	}
	_, err = s.secrets.Secrets(s.namespace).Create(ctx, secret, metav1.CreateOptions{})
	switch {
	case err == nil:
		return kr, true, nil
	case apierrors.IsAlreadyExists(err):
		// Another replica won the race: use its key, never ours.
		kr, err = s.load(ctx, env)
		return kr, false, err
	default:
		return nil, false, fmt.Errorf("sealk8s: create %s/%s: %w", s.namespace, s.name, err)
	}
}

// Rotate adds a key one version newer than the newest and returns the
// updated keyring. A concurrent change makes it re-read and try again, so
// no update is lost.
func (s *Store) Rotate(ctx context.Context) (*seal.Keyring, error) {
	return s.update(ctx, func(kr *seal.Keyring) error {
		_, err := kr.Rotate()
		return err
	})
}

// Retire removes a key version and returns the updated keyring. The newest
// version cannot be retired (seal.ErrInvalidKey), an absent one fails with
// seal.ErrUnknownKey.
func (s *Store) Retire(ctx context.Context, version int) (*seal.Keyring, error) {
	return s.update(ctx, func(kr *seal.Keyring) error { return kr.Retire(version) })
}

// update applies change to the stored keyring with an Update guarded by
// the resourceVersion it read.
func (s *Store) update(ctx context.Context, change func(*seal.Keyring) error) (*seal.Keyring, error) {
	var out *seal.Keyring
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secret, err := s.get(ctx)
		if err != nil {
			return err
		}
		kr, err := s.decode(secret, "")
		if err != nil {
			return err
		}
		if err := change(kr); err != nil {
			return err
		}
		wipeData(secret.Data)
		secret.Data = seal.EncodeKeyring(kr)
		defer wipeData(secret.Data)
		// secret carries the resourceVersion read above, so a concurrent
		// writer makes this fail with a conflict instead of being lost.
		if _, err := s.secrets.Secrets(s.namespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			return err
		}
		out = kr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sealk8s: update %s/%s: %w", s.namespace, s.name, err)
	}
	return out, nil
}

// load reads the Secret and decodes env's keyring from it. A missing Secret
// is returned as the API's NotFound error.
func (s *Store) load(ctx context.Context, env string) (*seal.Keyring, error) {
	secret, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	defer wipeData(secret.Data)
	return s.decode(secret, env)
}

func (s *Store) get(ctx context.Context) (*corev1.Secret, error) {
	secret, err := s.secrets.Secrets(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sealk8s: get %s/%s: %w", s.namespace, s.name, err)
	}
	return secret, nil
}

// decode checks that secret is an Outpost environment key (of env, when
// env is set) and decodes its keyring.
func (s *Store) decode(secret *corev1.Secret, env string) (*seal.Keyring, error) {
	if secret.Type != SecretType || secret.Labels[kube.LabelManagedBy] != kube.ManagedBy {
		return nil, fmt.Errorf("%w: %s/%s has type %q and %s=%q; want type %q and %s=%q",
			ErrForeignSecret, s.namespace, s.name, secret.Type, kube.LabelManagedBy, secret.Labels[kube.LabelManagedBy],
			SecretType, kube.LabelManagedBy, kube.ManagedBy)
	}
	kr, err := seal.DecodeKeyring(secret.Data)
	if err != nil {
		return nil, fmt.Errorf("sealk8s: %s/%s: %w", s.namespace, s.name, err)
	}
	if env != "" && kr.Env() != env {
		return nil, fmt.Errorf("%w: %s/%s holds the key of %s, not %s; it is left untouched", seal.ErrWrongEnvironment, s.namespace, s.name, kr.Env(), env)
	}
	return kr, nil
}

func wipeData(data map[string][]byte) {
	for _, v := range data {
		seal.Wipe(v)
	}
}
