package manifests

// Outcomes of one object.
const (
	// OutcomeCreated: the object did not exist before the task.
	OutcomeCreated = "created"
	// OutcomeConfigured: the object existed and the task changed it.
	OutcomeConfigured = "configured"
	// OutcomeUnchanged: the object existed and applying it changed nothing.
	OutcomeUnchanged = "unchanged"
	// OutcomePruned: the previous revision held it, this one does not,
	// and the task deleted it.
	OutcomePruned = "pruned"
	// OutcomeDeleted: a delete task deleted the object (or its deletion
	// began: finalizers may still hold it).
	OutcomeDeleted = "deleted"
	// OutcomeSkipped: the task left the object alone; Reason says why.
	OutcomeSkipped = "skipped"
)

// MaxResultObjects caps the per-object entries of a result; the counts
// always cover every object.
const MaxResultObjects = 2000

// Result is the JSON document a manifests task reports.
type Result struct {
	Release string `json:"release"`
	// Revision is the revision applied; for a delete task, the one
	// deleted (0 when the release was unknown).
	Revision int64 `json:"revision"`
	// Objects lists what happened to each object: those of the bundle in
	// bundle order, then the prune candidates; for a delete task, the
	// objects of the release.
	Objects []ObjectResult `json:"objects"`
	// ObjectsOmitted counts the entries left out past MaxResultObjects.
	ObjectsOmitted int    `json:"objects_omitted,omitempty"`
	Counts         Counts `json:"counts"`
	DryRun         DryRun `json:"dry_run"`
}

// ObjectResult is the outcome of one object.
type ObjectResult struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
}

// Counts sums the outcomes.
type Counts struct {
	Created    int `json:"created"`
	Configured int `json:"configured"`
	Unchanged  int `json:"unchanged"`
	Pruned     int `json:"pruned"`
	Skipped    int `json:"skipped"`
	// Deleted counts the objects a delete task deleted.
	Deleted int `json:"deleted,omitempty"`
}

// DryRun says how the bundle was dry-run before it was written.
type DryRun struct {
	// OK is true when every object written passed a server-side dry-run
	// before any of them was written.
	OK bool `json:"ok"`
	// Objects counts the objects dry-run.
	Objects int `json:"objects"`
	// Deferred counts the objects dry-run after their Namespace or CRD
	// was applied (see the package documentation).
	Deferred int `json:"deferred,omitempty"`
}

func (r *Result) add(ref Ref, outcome, reason string) {
	switch outcome {
	case OutcomeCreated:
		r.Counts.Created++
	case OutcomeConfigured:
		r.Counts.Configured++
	case OutcomeUnchanged:
		r.Counts.Unchanged++
	case OutcomePruned:
		r.Counts.Pruned++
	case OutcomeSkipped:
		r.Counts.Skipped++
	case OutcomeDeleted:
		r.Counts.Deleted++
	}
	if len(r.Objects) >= MaxResultObjects {
		r.ObjectsOmitted++
		return
	}
	r.Objects = append(r.Objects, ObjectResult{
		Group: ref.Group, Version: ref.Version, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name,
		Outcome: outcome, Reason: reason,
	})
}
