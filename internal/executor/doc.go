// Package executor defines what a task kind implements for the agent: the
// Executor interface, the Task it is handed, and the typed errors that tell
// the hub whether a failed attempt may be retried. Each kind lives in its own
// package below this one; executors know a task, never where it came from.
package executor
