package manifests

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/outposthq/outpost/internal/kube"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/outposthq/outpost/internal/executor"
)

// Inventory Secret layout.
const (
	// InventorySecretType is the type of the inventory Secrets.
	InventorySecretType corev1.SecretType = "outpost.dev/inventory" //nolint:gosec // a Secret type name, not a credential
	// inventoryPrefix starts the name of a release's inventory Secret.
	inventoryPrefix = "outpost-release-"
	keyCommitted    = "committed"
	keyPending      = "pending"
	// gzipAbove compresses a record larger than this.
	gzipAbove = 16 << 10
	// maxInventoryBytes keeps the Secret below the API server's 1 MiB.
	maxInventoryBytes = 900 << 10
	// maxInventoryTries bounds the retries of a commit that lost a race
	// to a write that did not supersede it.
	maxInventoryTries = 3
)

// Ref names one object of a release.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// key identifies the object across versions of its kind.
func (r Ref) key() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

func (r Ref) String() string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// committed is the state of a release after its last successful task.
type committed struct {
	Release  string `json:"release"`
	Revision int64  `json:"revision"`
	TaskID   string `json:"task_id"`
	Attempt  int64  `json:"attempt"`
	// Digest identifies the content of the spec that produced the
	// revision, so an identical task does not start a new revision.
	Digest  string `json:"digest"`
	Objects []Ref  `json:"objects"`
	// Result is what the task reported, returned again to a repeat of
	// the same task.
	Result json.RawMessage `json:"result"`
}

// snapshot is what validation saw of one object before the first write.
type snapshot struct {
	Ref
	Existed         bool   `json:"existed"`
	ResourceVersion string `json:"resource_version,omitempty"`
	// Owned says it carried this release's labels (for prune candidates).
	Owned bool `json:"owned,omitempty"`
	// UID is the object's UID (for prune candidates): only that object is
	// deleted, not one created since under the same name.
	UID types.UID `json:"uid,omitempty"`
	// Skip is the reason it is not written or pruned, "" when it is.
	Skip string `json:"skip,omitempty"`
	// Adopted says the task takes it over from another owner.
	Adopted bool `json:"adopted,omitempty"`
}

// pending is the record of a task that may have started writing.
type pending struct {
	TaskID   string     `json:"task_id"`
	Attempt  int64      `json:"attempt"`
	Revision int64      `json:"revision"`
	Digest   string     `json:"digest"`
	Targets  []snapshot `json:"targets"`
	Prune    []snapshot `json:"prune"`
	// Delete says the task removes the release: nothing of it may be
	// written again (RecordedRevision).
	Delete bool `json:"delete,omitempty"`
}

// record is the inventory Secret as read.
type record struct {
	committed *committed
	pending   *pending
	// rv is the Secret's resourceVersion, "" when it does not exist yet.
	rv string
}

// inventory reads and writes one release's inventory Secret.
type inventory struct {
	secrets   corev1client.SecretInterface
	namespace string
	name      string
	release   string
}

func (inv *inventory) String() string { return "Secret " + inv.namespace + "/" + inv.name }

func (inv *inventory) load(ctx context.Context) (*record, error) {
	s, err := inv.secrets.Get(ctx, inv.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &record{}, nil
	}
	if err != nil {
		return nil, apiError(ctx, "read inventory", inv.String(), err)
	}
	if s.Type != InventorySecretType {
		return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s has type %q, not %q; it is not an Outpost inventory, rename or delete it", ErrInventory, inv, s.Type, InventorySecretType))
	}
	rec := &record{rv: s.ResourceVersion}
	if raw := s.Data[keyCommitted]; len(raw) > 0 {
		rec.committed = new(committed)
		if err := decodeRecord(raw, rec.committed); err != nil {
			return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s: committed state: %w", ErrInventory, inv, err))
		}
	}
	if raw := s.Data[keyPending]; len(raw) > 0 {
		rec.pending = new(pending)
		if err := decodeRecord(raw, rec.pending); err != nil {
			return nil, executor.Terminal(fmt.Errorf("manifests: %w: %s: pending state: %w", ErrInventory, inv, err))
		}
	}
	return rec, nil
}

// save writes rec, conditional on the resourceVersion it was read at, and
// updates rec.rv. A lost race returns an error wrapping a Conflict (or
// AlreadyExists) API error.
func (inv *inventory) save(ctx context.Context, rec *record) error {
	data := map[string][]byte{}
	if rec.committed != nil {
		b, err := encodeRecord(rec.committed)
		if err != nil {
			return err
		}
		data[keyCommitted] = b
	}
	if rec.pending != nil {
		b, err := encodeRecord(rec.pending)
		if err != nil {
			return err
		}
		data[keyPending] = b
	}
	if n := len(data[keyCommitted]) + len(data[keyPending]); n > maxInventoryBytes {
		return executor.Terminal(fmt.Errorf("manifests: %w: %s would hold %d bytes, more than %d; split the release", ErrInventory, inv, n, maxInventoryBytes))
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            inv.name,
			Namespace:       inv.namespace,
			ResourceVersion: rec.rv,
			Labels:          map[string]string{kube.LabelManagedBy: kube.ManagedBy, LabelRelease: inv.release},
		},
		Type: InventorySecretType,
		Data: data,
	}
	var out *corev1.Secret
	var err error
	if rec.rv == "" {
		out, err = inv.secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
	} else {
		out, err = inv.secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	if err != nil {
		return apiError(ctx, "write inventory", inv.String(), err)
	}
	rec.rv = out.ResourceVersion
	return nil
}

// lostRace reports whether a save failed because the Secret changed since
// it was read.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// fence fails with ErrStaleAttempt when rec shows that attempt of taskID
// has been superseded: a newer attempt of the same task is pending or
// committed.
func fence(rec *record, taskID string, attempt int64) error {
	if p := rec.pending; p != nil && p.TaskID == taskID && p.Attempt > attempt {
		return executor.Terminal(fmt.Errorf("manifests: %w: attempt %d of task %s is superseded by attempt %d, which holds the release; this attempt stops without writing", ErrStaleAttempt, attempt, taskID, p.Attempt))
	}
	if c := rec.committed; c != nil && c.TaskID == taskID && c.Attempt > attempt {
		return executor.Terminal(fmt.Errorf("manifests: %w: attempt %d of task %s is superseded: attempt %d already committed revision %d", ErrStaleAttempt, attempt, taskID, c.Attempt, c.Revision))
	}
	return nil
}

// holds reports whether rec's pending record belongs to this attempt.
func holds(rec *record, taskID string, attempt int64) bool {
	return rec.pending != nil && rec.pending.TaskID == taskID && rec.pending.Attempt == attempt
}

func encodeRecord(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("manifests: encode inventory: %w", err)
	}
	if len(b) <= gzipAbove {
		return b, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("manifests: compress inventory: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("manifests: compress inventory: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeRecord(raw []byte, v any) error {
	// JSON never starts with the gzip magic bytes.
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(zr, 64<<20))
		if err != nil {
			return err
		}
		raw = b
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return errors.New("malformed record: " + err.Error())
	}
	return nil
}
