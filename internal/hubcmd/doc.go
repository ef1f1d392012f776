// Package hubcmd holds the outpost-hub command line: serve, migrate, the
// bootstrap admin token and a server-side audit verification. It wires
// flags into hub.Options and opens the store named by --db.
package hubcmd
