// Package httpcall implements the http task kind: one request to an internal
// REST endpoint with credentials resolved from vault references on the agent,
// and a redacted report of the response (DESIGN §5, §6).
//
// The executor is validation-first: the spec is decoded and bounded, and
// every reference is resolved before anything is sent, so a missing secret
// fails the task without a request. Resolved values are registered with the
// task's redactor before they can reach a result or an error, are never
// logged, and do not follow a redirect to another origin.
package httpcall
