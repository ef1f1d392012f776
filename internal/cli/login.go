package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// maxTokenBytes bounds a token read from stdin.
const maxTokenBytes = 64 << 10

func (a *app) newLoginCommand() *cobra.Command {
	var hub, token string
	cmd := &cobra.Command{
		Use:   "login --hub URL --token TOKEN",
		Short: "Check an API token against a hub and save both in the config file",
		Long: `login calls the hub with the token (WhoAmI) and, if the hub accepts it,
writes the hub URL, the token and the CA file to the config file (mode 0600).

Pass --token - to read the token from stdin, which keeps it out of your shell
history: outpost login --hub https://hub.example --token - < token.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hub == "" {
				hub = a.opts.Getenv(envHub)
			}
			if hub == "" {
				return errors.New("login: no hub URL: pass --hub https://HUB")
			}
			if token == "-" {
				t, err := readSecret(a.opts.Stdin)
				if err != nil {
					return fmt.Errorf("login: read token from stdin: %w", err)
				}
				token = t
			}
			if token == "" {
				token = a.opts.Getenv(envToken)
			}
			if token == "" {
				return errors.New("login: no API token: pass --token TOKEN, or --token - to read it from stdin")
			}
			cfg := Config{Hub: strings.TrimRight(hub, "/"), Token: token}
			if a.caFile != "" {
				abs, err := filepath.Abs(a.caFile)
				if err != nil {
					return fmt.Errorf("login: CA file: %w", err)
				}
				cfg.CAFile = abs
			}
			client, err := a.newClient(cfg)
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			res, err := client.WhoAmI(cmd.Context(), connect.NewRequest(&v1.WhoAmIRequest{}))
			if err != nil {
				return apiError("login", err)
			}
			path, err := a.configPath()
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			if err := saveConfig(path, cfg); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			who := res.Msg
			a.notef("Saved hub and token to %s (mode 0600).", path)
			return a.printMessage(who, func(w io.Writer) {
				row(w, "HUB:", cfg.Hub)
				row(w, "TENANT:", who.GetTenant())
				row(w, "TOKEN:", who.GetTokenName())
			})
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "hub URL, https://... (default $OUTPOST_HUB)")
	cmd.Flags().StringVar(&token, "token", "", "operator API token, or - to read it from stdin (default $OUTPOST_TOKEN)")
	return cmd
}

// readSecret reads one line from r, bounded, without its surrounding space.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxTokenBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	s := strings.TrimSpace(line)
	if s == "" {
		return "", errors.New("stdin was empty")
	}
	return s, nil
}
