// Package e2e holds end-to-end tests: a real hub (SQLite or PostgreSQL
// store, TLS on loopback), real agents and real executors, in-process and as
// separate processes killed with SIGKILL.
package e2e
