// Package secret is the agent's executor for secret tasks: it opens a value
// sealed to the environment's age key, writes it as a Kubernetes Secret
// labelled as Outpost's, and restarts the workloads that ask for it
// (annotation outpost.dev/restart-on-secrets) by patching a checksum into
// their pod template. The hub never sees a value; neither does the result.
package secret
