// Package hubtest starts a real hub for tests: a SQLite (or given) store,
// TLS on a loopback port with a throw-away CA, an operator token and a
// connect client for the operator API. It is imported by tests only.
package hubtest
