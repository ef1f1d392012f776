package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/kube"
)

// The shape of the desired-state Secret.
const (
	// DesiredStateSecretType is the type of the Secret keeping the last
	// desired state an agent fetched.
	DesiredStateSecretType corev1.SecretType = "outpost.dev/desired-state" //nolint:gosec // a type name, not a credential
	// DefaultDesiredStateSecret is the usual name of that Secret.
	DefaultDesiredStateSecret = "outpost-desired-state"
	desiredStateKey           = "desired-state.pb.gz"
	// maxDesiredStateBytes keeps the compressed state below the API
	// server's 1 MiB per object; maxDesiredStateRaw bounds what a read
	// decompresses to.
	maxDesiredStateBytes = 900 << 10
	maxDesiredStateRaw   = 64 << 20
)

// ErrDesiredStateTooLarge means the desired state does not fit in its
// Secret; it is then not kept, and an agent restarted while the hub is
// unreachable waits for the hub.
var ErrDesiredStateTooLarge = errors.New("desired state too large to keep in a Secret")

// DesiredCache keeps the last desired state the agent fetched, so an agent
// restarted while the hub is unreachable reconciles it meanwhile.
type DesiredCache interface {
	// Load returns what Save stored, or nil when nothing was.
	Load(ctx context.Context) ([]byte, error)
	Save(ctx context.Context, state []byte) error
}

// SecretDesiredCache keeps the desired state, compressed, in a Secret of
// the agent's namespace. Replicas share it; any replica's latest fetch
// wins, which is harmless since all fetch the same state.
type SecretDesiredCache struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

var _ DesiredCache = SecretDesiredCache{}

// Load reads the Secret; a missing Secret is no state.
func (c SecretDesiredCache) Load(ctx context.Context) ([]byte, error) {
	s, err := c.Client.CoreV1().Secrets(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read desired state %s/%s: %w", c.Namespace, c.Name, err)
	}
	if s.Type != DesiredStateSecretType {
		return nil, fmt.Errorf("agent: Secret %s/%s is not a desired-state Secret (type %q)", c.Namespace, c.Name, s.Type)
	}
	zr, err := gzip.NewReader(bytes.NewReader(s.Data[desiredStateKey]))
	if err != nil {
		return nil, fmt.Errorf("agent: desired state %s/%s: %w", c.Namespace, c.Name, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDesiredStateRaw+1))
	if err != nil {
		return nil, fmt.Errorf("agent: desired state %s/%s: %w", c.Namespace, c.Name, err)
	}
	if len(raw) > maxDesiredStateRaw {
		return nil, fmt.Errorf("agent: desired state %s/%s decompresses to more than %d bytes", c.Namespace, c.Name, maxDesiredStateRaw)
	}
	return raw, nil
}

// Save writes state into the Secret, creating it when missing.
func (c SecretDesiredCache) Save(ctx context.Context, state []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(state); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if buf.Len() > maxDesiredStateBytes {
		return fmt.Errorf("%w: %d bytes compressed, at most %d", ErrDesiredStateTooLarge, buf.Len(), maxDesiredStateBytes)
	}
	secrets := c.Client.CoreV1().Secrets(c.Namespace)
	s, err := secrets.Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: map[string]string{kube.LabelManagedBy: kube.ManagedBy, labelComponent: "agent"}},
			Type:       DesiredStateSecretType,
			Data:       map[string][]byte{desiredStateKey: buf.Bytes()},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // a replica saved the same state first
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("agent: read desired state %s/%s: %w", c.Namespace, c.Name, err)
	}
	if s.Type != DesiredStateSecretType {
		return fmt.Errorf("agent: Secret %s/%s is not a desired-state Secret (type %q); not overwriting it", c.Namespace, c.Name, s.Type)
	}
	s.Data = map[string][]byte{desiredStateKey: buf.Bytes()}
	_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil // another replica wrote meanwhile; both fetched the same state
	}
	return err
}
