package secret

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Labels and annotations of the Secrets the executor writes.
const (
	// LabelSecret carries the Secret's name, when it fits a label value.
	LabelSecret = "outpost.dev/secret" //nolint:gosec // a label name, not a credential
	// AnnotationChecksum is the hex SHA-256 of the Secret's sorted keys
	// and values; workloads' checksums are built from it.
	AnnotationChecksum = "outpost.dev/secret-checksum"
	// AnnotationKeyVersion is the environment key version the value was
	// sealed to.
	AnnotationKeyVersion = "outpost.dev/key-version"
)

// ErrNoRedactor reports a task handed over without a redactor; the executor
// refuses to open values it could not keep out of reports.
var ErrNoRedactor = errors.New("secret: task has no redactor")

// Executor runs secret tasks. It is safe for concurrent use.
type Executor struct {
	opts Options
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor.
func New(opts Options) (*Executor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Executor{opts: opts}, nil
}

// Execute writes or deletes the Secret the task names, then patches the
// workloads that restart on it. An invalid spec, or a value that does not
// open with the environment's keyring (another environment, tampered,
// unknown key), is a terminal error naming the secret, never a value.
func (e *Executor) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	var spec taskspec.Secret
	if err := taskspec.Decode(t.Spec, &spec); err != nil {
		return nil, executor.Terminal(fmt.Errorf("secret: %w", err))
	}
	var (
		res Result
		err error
	)
	if spec.Delete {
		res, err = e.delete(ctx, spec)
	} else {
		res, err = e.apply(ctx, t, spec)
	}
	if err != nil {
		return nil, err
	}
	e.opts.Logger.InfoContext(ctx, "secret task", "task", t.ID, "namespace", res.Namespace, "secret", res.Secret,
		"outcome", res.Outcome, "key_version", res.KeyVersion, "workloads", len(res.Workloads))
	out, err := json.Marshal(res) //nolint:gosec // Secret is the name; the result holds no value
	if err != nil {
		return nil, fmt.Errorf("secret: encode result: %w", err)
	}
	return out, nil
}

func (e *Executor) apply(ctx context.Context, t executor.Task, spec taskspec.Secret) (Result, error) {
	res := Result{Secret: spec.Name, Namespace: spec.Namespace, KeyVersion: spec.Sealed.KeyVersion}
	if t.Redact == nil {
		return res, executor.Terminal(ErrNoRedactor)
	}
	kr, err := e.opts.Keyring(ctx)
	if err != nil {
		return res, fmt.Errorf("secret %s/%s: load keyring: %w", spec.Namespace, spec.Name, err)
	}
	values, err := seal.Open(kr, spec.Sealed, e.opts.Env, spec.Name)
	if err != nil {
		return res, executor.Terminal(fmt.Errorf("secret %s/%s: %w", spec.Namespace, spec.Name, err))
	}
	defer func() {
		for _, v := range values {
			seal.Wipe(v)
		}
	}()
	for _, v := range values {
		t.Redact.AddSecret(string(v))
	}
	sum := Checksum(values)

	secrets := e.opts.Client.CoreV1().Secrets(spec.Namespace)
	cur, err := secrets.Get(ctx, spec.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace}}
		e.stamp(obj, spec, values, sum)
		if _, err := secrets.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return res, kubeError(spec, "create", err)
		}
		res.Outcome = OutcomeCreated
	case err != nil:
		return res, kubeError(spec, "get", err)
	case !managed(cur) && !spec.Adopt:
		res.Outcome, res.Reason = OutcomeSkipped, "the Secret exists and is not managed by Outpost; set adopt to take it over"
		return res, nil
	case cur.Type != "" && cur.Type != corev1.SecretTypeOpaque:
		res.Outcome, res.Reason = OutcomeSkipped, fmt.Sprintf("the Secret has type %s, not Opaque", cur.Type)
		return res, nil
	case managed(cur) && Checksum(cur.Data) == sum && cur.Annotations[AnnotationChecksum] == sum &&
		cur.Annotations[AnnotationKeyVersion] == strconv.Itoa(spec.Sealed.KeyVersion) && len(cur.StringData) == 0:
		res.Outcome = OutcomeUnchanged
	default:
		obj := cur.DeepCopy()
		e.stamp(obj, spec, values, sum)
		if _, err := secrets.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			return res, kubeError(spec, "update", err)
		}
		res.Outcome = OutcomeUpdated
	}
	// Rollouts run on every apply, not only after a write: a retry after
	// a failed patch must still restart the workloads, and a workload
	// already at the checksum is not patched again.
	res.Workloads, err = e.rollout(ctx, spec, sum)
	return res, err
}

// stamp makes obj an Outpost-managed Opaque Secret holding values.
func (e *Executor) stamp(obj *corev1.Secret, spec taskspec.Secret, values map[string][]byte, sum string) {
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	obj.Labels[kube.LabelManagedBy] = kube.ManagedBy
	if len(validation.IsValidLabelValue(spec.Name)) == 0 {
		obj.Labels[LabelSecret] = spec.Name
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[AnnotationChecksum] = sum
	obj.Annotations[AnnotationKeyVersion] = strconv.Itoa(spec.Sealed.KeyVersion)
	obj.Type = corev1.SecretTypeOpaque
	obj.Data = maps.Clone(values)
	obj.StringData = nil
}

func (e *Executor) delete(ctx context.Context, spec taskspec.Secret) (Result, error) {
	res := Result{Secret: spec.Name, Namespace: spec.Namespace}
	secrets := e.opts.Client.CoreV1().Secrets(spec.Namespace)
	cur, err := secrets.Get(ctx, spec.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		res.Outcome = OutcomeAbsent
		return res, nil
	case err != nil:
		return res, kubeError(spec, "get", err)
	case !managed(cur):
		res.Outcome, res.Reason = OutcomeSkipped, "the Secret is not managed by Outpost; it was left in place"
		return res, nil
	}
	// The preconditions keep a Secret replaced since the read (by someone
	// else, maybe unmanaged) from being deleted.
	err = secrets.Delete(ctx, spec.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
	switch {
	case apierrors.IsNotFound(err):
		res.Outcome = OutcomeAbsent
	case err != nil:
		return res, kubeError(spec, "delete", err)
	default:
		res.Outcome = OutcomeDeleted
	}
	return res, nil
}

func managed(s *corev1.Secret) bool { return s.Labels[kube.LabelManagedBy] == kube.ManagedBy }

// kubeError wraps an API error; one the same request meets again
// (kube.PermanentAPIError) is terminal, anything else (conflicts,
// timeouts) is retried.
func kubeError(spec taskspec.Secret, op string, err error) error {
	err = fmt.Errorf("secret %s/%s: %s: %w", spec.Namespace, spec.Name, op, err)
	if kube.PermanentAPIError(err) {
		return executor.Terminal(err)
	}
	return err
}

// Checksum is the hex SHA-256 over values' keys in order, each key and
// value length-prefixed so no two maps share a checksum.
func Checksum(values map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, k := range slices.Sorted(maps.Keys(values)) {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(values[k])))
		h.Write(n[:])
		h.Write(values[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
