// Package access asks the API server, with SelfSubjectAccessReviews, whether
// the agent's identity may do what a task needs, before the task writes
// anything. Executors list the permissions they need with the reason for
// each; a denial names every missing permission and why it is needed, so
// the operator can fix the agent's Role in one go.
package access
