// Package store defines the hub's storage contract: the rows (tenants,
// environments, tokens, agents, tasks, audit events, artifacts) and the
// Store interface whose methods each run as one transaction. Two
// implementations live below it, sqlite (the embedded default) and postgres
// (several hub replicas on one database); package storetest holds the
// conformance suite both must pass.
//
// Queue semantics live here, because they must hold across replicas: a
// claim leases runnable tasks with a new fencing epoch, never two tasks with
// an overlapping conflict key at once and in enqueue order per key; a report
// or renewal at a stale epoch is refused with ErrStaleEpoch; a failed attempt
// is retried with backoff until MaxAttempts; audit events are appended in the
// same transaction as the change they record.
package store
