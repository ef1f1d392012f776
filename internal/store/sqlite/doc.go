// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), the hub's default for a single replica.
//
// Writes go through one connection whose transactions start with BEGIN
// IMMEDIATE, driven by one writer goroutine that commits the writes
// waiting for it together (group commit, each in its own savepoint, see
// writer.go), so writers queue inside the process instead of meeting
// SQLITE_BUSY; reads use a separate pool of query-only connections, which
// WAL mode lets run beside the writer. Wake-ups fan out in process to
// ListenWakeups subscribers, after the transaction that caused them commits.
package sqlite
