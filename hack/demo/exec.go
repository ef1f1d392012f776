package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// output is what a finished command printed.
type output struct {
	stdout, stderr string
}

// shown is the output as the demo shows it: the notes the CLI writes to
// stderr, then the result on stdout. (Read through two pipes, the two
// would interleave differently from run to run.)
func (o output) shown() string {
	if o.stderr == "" {
		return o.stdout
	}
	return strings.TrimRight(o.stderr, "\n") + "\n" + o.stdout
}

// exec runs one of the Outpost binaries to completion with stdin and
// returns what it printed. A non-zero exit is an error that quotes the
// command's stderr (never its stdout, which may hold a token).
func (d *demo) exec(ctx context.Context, binary, stdin string, args ...string) (output, error) {
	cmd := exec.CommandContext(ctx, d.binary(binary), args...) //nolint:gosec // the demo runs the binaries it was pointed at
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := output{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		msg := strings.TrimSpace(out.stderr)
		if msg != "" {
			msg = ":\n    " + strings.ReplaceAll(msg, "\n", "\n    ")
		}
		return out, fmt.Errorf("`%s %s` failed (%w)%s", binary, commandName(args), err, msg)
	}
	return out, nil
}

// commandName is the subcommand part of args, e.g. "task run".
func commandName(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == 2 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// cli runs the outpost CLI and shows the command and its output.
func (d *demo) cli(ctx context.Context, args ...string) (output, error) {
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	out, err := d.exec(ctx, cliBinary, "", args...)
	if err == nil {
		d.out.block(out.shown())
	}
	return out, err
}
