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
//
// Durability: the database runs in WAL mode with synchronous=NORMAL. A
// committed write survives the hub process crashing or being killed; the
// last transactions committed before a power loss or an operating system
// crash may be lost (the WAL is synced at checkpoints, not at every
// commit), and the database is never corrupted. Group commit does not
// change this: a caller is answered only after the COMMIT of its write.
package sqlite
