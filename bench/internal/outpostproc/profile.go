package outpostproc

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// EnvCPUProfile names, in a child's environment, the file its CPU profile
// is written to.
const EnvCPUProfile = "OUTPOST_BENCH_CPUPROFILE"

// ServeProfileSignals is for a benchmark running itself as the hub or an
// agent: when EnvCPUProfile is set, SIGUSR1 starts a CPU profile of this
// process and SIGUSR2 writes it to that file. It returns at once; the
// signals are handled until the process exits.
func ServeProfileSignals() {
	path := os.Getenv(EnvCPUProfile)
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path); err != nil { //nolint:gosec // named by the benchmark
					fmt.Fprintln(os.Stderr, "cpu profile:", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					fmt.Fprintln(os.Stderr, "cpu profile:", err)
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				_ = f.Close()
				f = nil
			}
		}
	}()
}
