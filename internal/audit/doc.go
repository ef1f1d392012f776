// Package audit defines Outpost's tamper-evident audit log: the event shape,
// the action names, and the hash chain that links each event of a tenant to
// the one before it, so that an edited, inserted or deleted row is detected
// by Verify.
package audit
