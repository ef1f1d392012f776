package kube

// The label every object Outpost writes to a cluster carries, whoever in
// the agent writes it (its identity Secret, a release's objects and
// inventory), so collision defense and operators find them by one rule.
const (
	// LabelManagedBy is the well-known label naming the manager.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value on Outpost's objects.
	ManagedBy = "outpost"
)
