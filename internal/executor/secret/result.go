package secret

// Outcomes of a secret task.
const (
	// OutcomeCreated: the Secret did not exist and the task created it.
	OutcomeCreated = "created"
	// OutcomeUpdated: the Secret existed and the task changed it.
	OutcomeUpdated = "updated"
	// OutcomeUnchanged: the Secret already held the values; nothing was
	// written to it.
	OutcomeUnchanged = "unchanged"
	// OutcomeSkipped: the Secret is not Outpost's; Reason says why.
	OutcomeSkipped = "skipped"
	// OutcomeDeleted: the task deleted the Secret.
	OutcomeDeleted = "deleted"
	// OutcomeAbsent: there was no Secret to delete.
	OutcomeAbsent = "absent"
)

// Result is the JSON document a secret task reports. It never holds a
// value, only names, the key version and what happened.
type Result struct {
	Secret    string `json:"secret"`
	Namespace string `json:"namespace"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
	// KeyVersion is the version of the environment key the value was
	// sealed to; 0 for a delete.
	KeyVersion int `json:"key_version,omitempty"`
	// Workloads lists the workloads whose pod template the task patched
	// to restart them.
	Workloads []Workload `json:"workloads,omitempty"`
}

// Workload names a patched Deployment, StatefulSet or DaemonSet.
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}
