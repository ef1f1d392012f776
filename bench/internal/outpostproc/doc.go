// Package outpostproc runs outpost-hub and outpost-agent as child
// processes of a benchmark, so that their memory and CPU can be read from
// /proc: a hub on a fresh store with an operator client for it, agents
// enrolled with bootstrap tokens, and the waits in between (ready,
// connected, task ended). Every child dies with the benchmark, even when
// the benchmark is killed.
//
// A child started with EnvCPUProfile set and running ServeProfileSignals
// (a benchmark that runs itself in hub or agent mode) profiles its CPU
// between Child.StartProfile and the function it returns.
package outpostproc
