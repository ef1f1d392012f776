// Command demo runs Outpost end to end on this machine, the way an operator
// would: a hub on SQLite with a throw-away CA, the operator CLI, an agent
// enrolled with a single-use token, and an http task that calls a stand-in
// for a customer's internal API with a credential the agent resolves from
// its local vault. It then checks that the credential never reached the
// hub: not in the task result, not in the hub's database, not in any log.
//
// `make demo` builds the binaries and runs it. Everything keeps running
// until Ctrl-C, so the CLI can be tried against the hub; then the agent and
// the hub are stopped. With -once (or OUTPOST_DEMO_ONCE=1) it stops after
// the walk-through, for CI and smoke tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of the demo.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the demo under a context cancelled by SIGINT or
// SIGTERM, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return newDemo(opts, newPrinter(stdout, os.Getenv)).run(ctx)
}
