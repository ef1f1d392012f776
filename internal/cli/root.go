package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// Sentinel errors callers and tests branch on.
var (
	// ErrNotLoggedIn: no hub URL or token in the config file or environment.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrInsecureConfig: the config or state file is readable by other users.
	ErrInsecureConfig = errors.New("file is readable by other users")
	// ErrTaskFailed: a waited-for task ended failed.
	ErrTaskFailed = errors.New("task failed")
	// ErrTaskCancelled: a waited-for task ended cancelled.
	ErrTaskCancelled = errors.New("task cancelled")
	// ErrWaitTimeout: a task did not finish within the wait timeout.
	ErrWaitTimeout = errors.New("timed out waiting for task")
	// ErrReleaseFailed: a waited-for release failed to apply or delete.
	ErrReleaseFailed = errors.New("release failed")
	// ErrReleaseWaitTimeout: a release was not applied or deleted within
	// the wait timeout.
	ErrReleaseWaitTimeout = errors.New("timed out waiting for release")
	// ErrAuditTampered: the audit chain verifies on its own but is shorter
	// than, or diverges from, a head verified earlier.
	ErrAuditTampered = errors.New("audit log tampered with")
)

// Exit codes of `outpost`; `task wait` documents them to scripts.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitTimeout = 2
)

// ExitError asks for a specific process exit code; Err says why.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by the root command to the process exit
// code: 0 for nil, the code of a wrapped ExitError, 1 for anything else.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	return ExitFailure
}

// Options configures the command tree. Zero fields take the process's own
// values (os.Stdout, os.Getenv, time.Now, ...), so cmd/outpost passes none.
type Options struct {
	Stdout io.Writer
	Stderr io.Writer
	// Stdin feeds `--token -` and `--spec -`.
	Stdin io.Reader
	// ConfigPath replaces the default config location
	// ($XDG_CONFIG_HOME/outpost/config.yaml); --config and OUTPOST_CONFIG
	// still take precedence.
	ConfigPath string
	// HTTPClient, when set, is used for every hub call instead of the client
	// built by package transport from the CA file; it must enforce TLS itself.
	HTTPClient *http.Client
	// Getenv reads the environment (OUTPOST_*, XDG_CONFIG_HOME, HOME).
	Getenv func(string) string
	// Now is the clock behind relative times in tables.
	Now func() time.Time
	// Location is the zone absolute times are printed in; default time.Local.
	Location *time.Location
	// StdinIsTerminal reports whether a person at a terminal can answer a
	// prompt on Stdin; default: Stdin is an *os.File on a character device.
	StdinIsTerminal func() bool
	// PollInterval is the first delay between polls of a waited-for task or release;
	// delays double up to MaxPollInterval. Defaults 250ms and 5s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.StdinIsTerminal == nil {
		stdin := o.Stdin
		o.StdinIsTerminal = func() bool { return stdinIsTerminal(stdin) }
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.PollInterval == 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.MaxPollInterval == 0 {
		o.MaxPollInterval = 5 * time.Second
	}
	return o
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	if o.PollInterval < 0 || o.MaxPollInterval < o.PollInterval {
		return fmt.Errorf("cli options: poll intervals %v..%v are not a valid range", o.PollInterval, o.MaxPollInterval)
	}
	return nil
}

// app is the state shared by all commands of one invocation: the options
// and the values of the root's persistent flags.
type app struct {
	opts       Options
	configFlag string
	caFile     string
	output     string
	format     format
}

// NewRootCommand returns the `outpost` command tree. Errors are returned
// from Execute unprinted (the caller prints them once); usage is not
// repeated on a runtime error.
func NewRootCommand(opts Options) *cobra.Command {
	a := &app{opts: opts.withDefaults()}
	root := &cobra.Command{
		Use:   "outpost",
		Short: "Operate an Outpost hub: environments, agents, releases, tasks and the audit log",
		Long: `outpost is the operator CLI for an Outpost hub.

Start with ` + "`outpost login --hub URL --token TOKEN`" + `; the hub URL, token and CA
file are kept in $XDG_CONFIG_HOME/outpost/config.yaml (mode 0600).
OUTPOST_HUB and OUTPOST_TOKEN override the file; OUTPOST_CONFIG or --config
choose another file.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if err := a.opts.Validate(); err != nil {
				return err
			}
			f, err := parseFormat(a.output)
			a.format = f
			return err
		},
	}
	root.SetOut(a.opts.Stdout)
	root.SetErr(a.opts.Stderr)
	root.SetIn(a.opts.Stdin)
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFlag, "config", "", "config file (default $OUTPOST_CONFIG or $XDG_CONFIG_HOME/outpost/config.yaml)")
	pf.StringVar(&a.caFile, "ca-file", "", "PEM bundle of CAs to trust for the hub, in addition to the system roots")
	pf.StringVarP(&a.output, "output", "o", string(formatTable), "output format: table, json or yaml")

	root.AddCommand(
		a.newLoginCommand(),
		a.newEnvCommand(),
		a.newTokenCommand(),
		a.newAgentCommand(),
		a.newTaskCommand(),
		a.newReleaseCommand(),
		a.newSecretCommand(),
		a.newAuditCommand(),
	)
	return root
}
