package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/outposthq/outpost/internal/kube"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The shape of an identity Secret.
const (
	// SecretIdentityType is the type of the Secret holding an agent
	// identity, so nobody mistakes it for (or overwrites it with) another
	// kind of Secret.
	SecretIdentityType corev1.SecretType = "outpost.dev/agent-identity" //nolint:gosec // a type name, not a credential
	// DefaultIdentitySecret is the usual name of that Secret.
	DefaultIdentitySecret = "outpost-agent-identity"

	secretKeyAgentID     = "agent-id"
	secretKeyEnvironment = "environment"
	secretKeySeed        = "ed25519-seed" //nolint:gosec // a key name, not a credential

	labelComponent = "app.kubernetes.io/component"

	// maxIdentityField bounds the agent id and environment read back from a
	// Secret; the hub issues far shorter ones.
	maxIdentityField = 1 << 10
)

// ErrIdentityConflict means the identity Secret already holds another
// agent's identity: a replica that enrolled at the same time won the race.
// The identity this process enrolled with is not kept; restarting loads
// the stored one.
var ErrIdentityConflict = errors.New("identity Secret holds another agent's identity")

// SecretIdentity keeps the identity in a Kubernetes Secret in the agent's
// own namespace, so a restarted or rescheduled pod keeps it and deleting the
// Secret means enrolling again.
//
// Save never overwrites an identity: it creates the Secret, or fills one
// that exists empty (pre-created so RBAC can name it), and fails with
// ErrIdentityConflict when another identity is already stored. Replicas
// racing to enroll therefore end up sharing the first identity written:
// the loser's Save fails, and when it next establishes its session (the
// agent retries, or the pod restarts) Load returns the winner. Failing is
// deliberate: Save cannot hand the winner back to the caller, and carrying
// on with an identity nobody keeps would split the replicas across agent
// ids until their next restart. (With one single-use bootstrap token the
// loser usually fails earlier, at enrollment, and recovers the same way.)
//
// The Secret's data are agent-id, environment and ed25519-seed (the raw
// 32-byte seed). The private key is never written to logs or errors.
type SecretIdentity struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

var _ IdentityStore = SecretIdentity{}

func (s SecretIdentity) ref() string { return "Secret " + s.Namespace + "/" + s.Name }

func (s SecretIdentity) check() error {
	if s.Client == nil || s.Namespace == "" || s.Name == "" {
		return errors.New("agent: identity Secret: Client, Namespace and Name are required")
	}
	return nil
}

// Load reads the identity from the Secret. A missing Secret, or one of the
// identity type that holds no data yet, is ErrNoIdentity.
func (s SecretIdentity) Load(ctx context.Context) (Identity, error) {
	if err := s.check(); err != nil {
		return Identity{}, err
	}
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("agent: read identity %s: %w", s.ref(), err)
	}
	return s.decode(sec)
}

// decode checks sec and returns the identity it holds.
func (s SecretIdentity) decode(sec *corev1.Secret) (Identity, error) {
	if sec.Type != SecretIdentityType {
		return Identity{}, fmt.Errorf("agent: %s has type %q, not %q: it is not an Outpost agent identity; pick another name with --identity-secret or delete it",
			s.ref(), sec.Type, SecretIdentityType)
	}
	if len(sec.Data) == 0 {
		return Identity{}, ErrNoIdentity
	}
	id, seed, env := sec.Data[secretKeyAgentID], sec.Data[secretKeySeed], sec.Data[secretKeyEnvironment]
	var missing []string
	if len(id) == 0 || len(id) > maxIdentityField {
		missing = append(missing, secretKeyAgentID)
	}
	if len(env) > maxIdentityField {
		missing = append(missing, secretKeyEnvironment)
	}
	if len(seed) != ed25519.SeedSize {
		missing = append(missing, secretKeySeed)
	}
	if len(missing) > 0 {
		return Identity{}, fmt.Errorf("agent: %s is incomplete (missing or malformed: %v); delete it and enroll again with a new bootstrap token", s.ref(), missing)
	}
	return Identity{AgentID: string(id), Environment: string(env), Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// Save stores id in the Secret, creating it. See the type's doc for what
// happens when the Secret already exists.
func (s SecretIdentity) Save(ctx context.Context, id Identity) error {
	if err := s.check(); err != nil {
		return err
	}
	if id.AgentID == "" || len(id.Key) != ed25519.PrivateKeySize {
		return errors.New("agent: identity to store has no agent id or no Ed25519 key")
	}
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	immutable := true
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      s.Name,
			Namespace: s.Namespace,
			Labels:    map[string]string{kube.LabelManagedBy: kube.ManagedBy, labelComponent: "agent-identity"},
		},
		Type:      SecretIdentityType,
		Immutable: &immutable,
		Data: map[string][]byte{
			secretKeyAgentID:     []byte(id.AgentID),
			secretKeyEnvironment: []byte(id.Environment),
			secretKeySeed:        id.Key.Seed(),
		},
	}
	_, err := secrets.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("agent: create identity %s: %w", s.ref(), err)
	}
	// A placeholder may be filled once; a conflict means someone else
	// filled it first, and the second pass compares against theirs.
	for range 2 {
		cur, err := secrets.Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("agent: read identity %s: %w", s.ref(), err)
		}
		stored, err := s.decode(cur)
		if err == nil {
			if stored.AgentID == id.AgentID && stored.Key.Equal(id.Key) {
				return nil // a retried Save whose first create went through
			}
			return fmt.Errorf("agent: %w: %s holds agent %s (another replica enrolled first), this process enrolled as %s; the agent uses the stored identity once it retries or restarts, and %s can be disabled with `outpost agent disable`",
				ErrIdentityConflict, s.ref(), stored.AgentID, id.AgentID, id.AgentID)
		}
		if !errors.Is(err, ErrNoIdentity) {
			return err
		}
		fill := cur.DeepCopy()
		fill.Data, fill.Immutable = want.Data, want.Immutable
		if fill.Labels == nil {
			fill.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			fill.Labels[k] = v
		}
		_, err = secrets.Update(ctx, fill, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("agent: fill identity %s: %w", s.ref(), err)
		}
	}
	return fmt.Errorf("agent: identity %s keeps changing under the agent; check what else writes it", s.ref())
}
