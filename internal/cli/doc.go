// Package cli implements `outpost`, the operator command line for an
// Outpost hub: login, environments and their status, bootstrap tokens,
// agents, releases (desired state applied from release files), tasks and the
// audit log. It speaks only the OperatorService API, over the HTTPS client of
// package transport, with the operator's API token as a bearer credential.
//
// NewRootCommand builds the whole command tree from an Options value, so
// tests drive the CLI in-process against a fake hub; cmd/outpost only runs
// it and turns the returned error into an exit code with ExitCode.
package cli
