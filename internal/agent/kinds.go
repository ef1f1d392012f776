package agent

import "slices"

// Kinds returns the task kinds the agent claims: those it has executors
// for, sorted.
func (a *Agent) Kinds() []string { return slices.Clone(a.kinds) }
