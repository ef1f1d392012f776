package reconcile

import (
	"context"
	"time"
)

// Reporter receives the reconciler's reports; the agent forwards them to
// the hub. ReportDrift may block and fail: the reconciler calls it from one
// goroutine, retries failures with backoff and, while a report waits,
// replaces it with the release's newer state, so a slow or unreachable hub
// never holds reconciliation up.
type Reporter interface {
	ReportDrift(ctx context.Context, d Drift) error
}

// Drift is the state of one release as the reconciler last saw it.
//
// Objects empty and Error empty: the release is in sync (sent after the
// first full sync of a release and whenever a drifted release is back in
// sync). Corrected true: the listed objects had drifted and were applied
// again; the release is in sync. Otherwise the listed objects are drifted
// and stay so (detect mode, or a correction that failed, with Error
// saying why).
type Drift struct {
	// Release is the hub's release name.
	Release string
	// Revision is the desired revision the objects were compared with.
	Revision int64
	// Mode is the release's mode.
	Mode Mode
	// Objects are the drifted (or corrected) objects, sorted.
	Objects []ObjectDrift
	// Corrected reports that Objects were corrected.
	Corrected bool
	// Error says why the release could not be compared or corrected.
	Error string
	// Time is when the reconciler saw this state.
	Time time.Time
}

// InSync reports whether d says the release matches its desired state.
func (d *Drift) InSync() bool { return d.Error == "" && (len(d.Objects) == 0 || d.Corrected) }

// ObjectDrift is one drifted object.
type ObjectDrift struct {
	// Group, Version and Kind are the object's type.
	Group   string
	Version string
	Kind    string
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Name is the object's name.
	Name string
	// Deleted: the object is gone.
	Deleted bool
	// Fields are the owned fields whose live value differs or is missing,
	// as JSON pointers; list elements are named by their keys, as in
	// /spec/template/spec/containers/[name=app]/image. Values are never
	// reported: they may be secret. For a Terraform resource, its
	// planned action (create, update, delete or replace).
	Fields []string
	// Address is a Terraform resource's address (terraform releases,
	// whose objects have no group, kind or name).
	Address string
}

// String names the object as Kind namespace/name, or a Terraform
// resource by its address.
func (o ObjectDrift) String() string {
	if o.Address != "" {
		return o.Address
	}
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}
