package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/outposthq/outpost/internal/tofutest"
)

// Binaries the demo runs, found in the -bin directory.
const (
	hubBinary   = "outpost-hub"
	agentBinary = "outpost-agent"
	cliBinary   = "outpost"
)

// envOnce makes the demo stop after the walk-through, like -once.
const envOnce = "OUTPOST_DEMO_ONCE"

// options are the demo's settings.
type options struct {
	// binDir holds outpost-hub, outpost-agent and outpost, as given (it is
	// shown in the commands the demo prints).
	binDir string
	// stateDir holds the database, TLS files, config, vault and logs; empty
	// means a new directory under the user's cache.
	stateDir string
	// listen is the hub's address; when taken, a free port is used.
	listen string
	// once stops the demo after the walk-through instead of at Ctrl-C.
	once bool
	// tofu is the OpenTofu binary the agent runs terraform releases with.
	tofu string
}

// parseOptions reads the command line and OUTPOST_DEMO_ONCE.
func parseOptions(args []string, getenv func(string) string, usage io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding "+hubBinary+", "+agentBinary+" and "+cliBinary+" (make build)")
	fs.StringVar(&o.stateDir, "state-dir", "", "empty or new directory for the hub's database, TLS files, config, vault and logs (default: a new one under ~/.cache/outpost/demo)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8443", "hub address; a free port is used instead when this one is taken")
	fs.BoolVar(&o.once, "once", false, "stop after the walk-through instead of waiting for Ctrl-C (env "+envOnce+"=1)")
	fs.StringVar(&o.tofu, "tofu", tofutest.Path(), "OpenTofu binary for the terraform release (make tofu builds it)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if v := getenv(envOnce); v != "" && !o.once {
		once, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%s=%q: want 1 or 0", envOnce, v)
		}
		o.once = once
	}
	return o, o.Validate()
}

// Validate checks that the binaries are there.
func (o options) Validate() error {
	if o.listen == "" {
		return errors.New("-listen must name an address, e.g. 127.0.0.1:8443")
	}
	for _, name := range []string{hubBinary, agentBinary, cliBinary} {
		path := filepath.Join(o.binDir, name)
		st, err := os.Stat(path)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable: run `make build` first, or pass -bin DIR", path)
		}
	}
	if !filepath.IsAbs(o.tofu) {
		return fmt.Errorf("-tofu %q: want an absolute path", o.tofu)
	}
	if st, err := os.Stat(o.tofu); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable: run `make tofu` first, or pass -tofu PATH", o.tofu)
	}
	return nil
}
