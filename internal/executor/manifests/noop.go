package manifests

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The executor skips the real apply of an object whose server-side dry-run
// shows that applying it changes nothing. The API server does not say so
// directly: a dry-run always returns the live object's resourceVersion,
// changed or not, since nothing is written. What it does return is the
// object as the apply would store it, and an apply that changes the object
// also stamps the field manager's managedFields entry with the time.
// Without a change, the API server stores nothing (the stored bytes would
// be the same) and the dry-run returns the live metadata exactly. So the
// real apply is a no-op when the dry-run's metadata (labels, annotations,
// generation, managedFields and their times, resourceVersion) equals the
// metadata read before it, and the entry's time could not have been
// stamped by the dry-run itself: managedFields times have a resolution of
// one second, so a change made within the second of the previous apply
// would keep the same time. The time the API server states in its
// responses (the Date header) bounds that: every dry-run is sent after a
// response dated D, so a change would be stamped D or later.

// clockSlack allows for API servers behind one endpoint whose clocks
// differ by up to a second.
const clockSlack = 1

// serverClock records the latest Date the API server has stated in a
// response. It is a lower bound, to the second, of the server's clock for
// any request sent afterwards.
type serverClock struct {
	latest atomic.Int64 // Unix seconds; 0 until a response is seen
}

// wrap returns a RoundTripper that records the Date of every response.
func (c *serverClock) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			if t, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
				c.observe(t.Unix())
			}
		}
		return resp, err
	})
}

func (c *serverClock) observe(unix int64) {
	for {
		cur := c.latest.Load()
		if unix <= cur || c.latest.CompareAndSwap(cur, unix) {
			return
		}
	}
}

// now returns the lower bound, in Unix seconds; 0 when none is known.
func (c *serverClock) now() int64 { return c.latest.Load() }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// liveMeta is what observe keeps of one live object: enough for collision
// defense, prune and the no-change check, not the object.
type liveMeta struct {
	rv     string
	uid    types.UID
	labels map[string]string
	// digest hashes the whole metadata in a canonical form; ok is false
	// when it could not be computed, and the object is then always
	// applied.
	digest [sha256.Size]byte
	ok     bool
	// appliedAt is the time of the executor's apply entry in
	// managedFields, in Unix seconds; 0 without one.
	appliedAt int64
}

func newLiveMeta(m *metav1.ObjectMeta) *liveMeta {
	lm := &liveMeta{rv: m.GetResourceVersion(), uid: m.GetUID(), labels: m.GetLabels()}
	lm.digest, lm.ok = metaDigest(m)
	lm.appliedAt = appliedAt(m.ManagedFields)
	return lm
}

// metaDigest hashes metadata through the same canonical form whether it
// comes typed (a metadata read) or unstructured (an apply's response):
// managedFields' fieldsV1 are re-encoded with sorted keys.
func metaDigest(m *metav1.ObjectMeta) ([sha256.Size]byte, bool) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	b, err := json.Marshal(u)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(b), true
}

// appliedAt returns the latest time the executor's field manager applied
// the object, in Unix seconds.
func appliedAt(fields []metav1.ManagedFieldsEntry) int64 {
	var at int64
	for _, f := range fields {
		if f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" && f.Time != nil {
			at = max(at, f.Time.Unix())
		}
	}
	return at
}

// unchanged reports whether applying an object for real would change
// nothing, given what observe read of it, the response to its dry-run, and
// the server's time (Unix seconds) before the dry-run was sent. It errs
// towards false: the object is then applied, as it was before the check.
func unchanged(live *liveMeta, dry *unstructured.Unstructured, sentAfter int64) bool {
	if live == nil || !live.ok || live.appliedAt == 0 || sentAfter == 0 {
		return false
	}
	if dry.GetResourceVersion() != live.rv {
		// Changed between the read and the dry-run.
		return false
	}
	if live.appliedAt >= sentAfter-clockSlack {
		// The dry-run may have stamped the same second.
		return false
	}
	raw, ok := dry.Object["metadata"].(map[string]any)
	if !ok {
		return false
	}
	var m metav1.ObjectMeta
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &m); err != nil {
		return false
	}
	d, ok := metaDigest(&m)
	return ok && d == live.digest
}
