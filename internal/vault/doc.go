// Package vault parses and resolves vault references, the
// vault://<provider>/<path>/<key>[/vN] strings a task carries instead of a
// secret (DESIGN §5). The hub and CLI only ever see references; the agent
// resolves them locally through a Resolver that dispatches by provider, for
// example the Local provider backed by a JSON vault file.
//
// Errors name the reference, never the value it resolves to.
package vault
