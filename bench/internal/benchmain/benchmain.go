// Package benchmain runs a benchmark's main: parse its flags, run it under a
// context that SIGINT and SIGTERM cancel, and report a failure as
// "name: error" on stderr with the benchmarks' exit codes.
package benchmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main parses os.Args[1:] with parse and calls run with the config and
// those arguments. -h and -help return quietly; a flag error exits 2 and a
// failed run exits 1, each printed on stderr prefixed with name. When
// timeout is not nil, the run's context ends after timeout(cfg).
func Main[C any](name string, parse func([]string) (C, error), timeout func(C) time.Duration, run func(context.Context, C, []string) error) {
	cfg, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout(cfg))
		defer cancel()
	}
	if err := run(ctx, cfg, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1) //nolint:gocritic // the process ends; the deferred stop and cancel have nothing left to release
	}
}
