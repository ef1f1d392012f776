// Package backoff is the project's one exponential backoff with full
// jitter, used for reconnects, report retries and task retry scheduling.
package backoff
