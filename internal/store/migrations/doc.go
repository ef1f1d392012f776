// Package migrations holds the hub's schema as SQL migrations embedded in
// the binary, one folder per dialect (sqlite, postgres), and applies them
// with a goose Provider: no global goose state, no init side effects. The
// stores apply them when they open; on PostgreSQL a session advisory lock
// keeps several replicas from migrating at once.
package migrations
