package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// maxBootstrapTTL is the longest life the hub grants a bootstrap token.
const maxBootstrapTTL = 2 * time.Hour

// defaultAgentChart is the published agent chart `token create` suggests.
const defaultAgentChart = "oci://ghcr.io/outposthq/charts/outpost-agent"

func (a *app) newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint agent bootstrap tokens",
	}
	var env string
	var ttl time.Duration
	var chart string
	create := &cobra.Command{
		Use:   "create --env NAME [--ttl 1h] [--chart REF]",
		Short: "Mint a single-use token that enrolls one agent in an environment",
		Long: `create mints a bootstrap token: it enrolls one agent into the environment,
once, before it expires (at most 2h). The hub keeps only its hash, so the
token is shown this one time.

The table output also shows how to start an agent with it: the outpost-agent
command line, and a helm install of the agent chart (--chart) that passes
the hub's URL, the environment, the token and, when this login trusts its
own CA file, that file as hub.caBundle. -o json and -o yaml print only the
token message.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env == "" {
				return errors.New("token create: pass --env NAME, the environment the agent will join")
			}
			if ttl < 0 || ttl > maxBootstrapTTL {
				return fmt.Errorf("token create: --ttl %v is out of range: bootstrap tokens live at most %v", ttl, maxBootstrapTTL)
			}
			client, cfg, err := a.dial()
			if err != nil {
				return err
			}
			req := &v1.CreateBootstrapTokenRequest{Environment: env}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			res, err := client.CreateBootstrapToken(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return apiError("create bootstrap token for "+env, err)
			}
			tok := res.Msg
			caFile := cfg.CAFile
			if caFile != "" {
				// --ca-file may be relative; the command may be pasted elsewhere.
				if abs, err := filepath.Abs(caFile); err == nil {
					caFile = abs
				}
			}
			a.notef("Warning: this bootstrap token is shown only once and enrolls one agent; the hub keeps only its hash.")
			if a.format != formatTable {
				return a.printMessage(tok, nil)
			}
			// The hub names the environment tenant/name, as the agent wants it.
			qualified := cmp.Or(tok.GetEnvironment(), env)
			return a.printTable(func(w io.Writer) {
				linef(w, "Bootstrap token for %s, expires %s:\n\n  %s\n\n", qualified, a.when(tok.GetExpiresAt()), tok.GetToken())
				enroll := "outpost-agent --hub " + shellQuote(cfg.Hub) + " --bootstrap-token " + shellQuote(tok.GetToken()) + " --environment " + shellQuote(qualified)
				if caFile != "" {
					// A self-signed hub: the agent needs the same CA.
					enroll += " --ca-file " + shellQuote(caFile)
				}
				linef(w, "Enroll an agent with:\n\n  %s\n", enroll)
				linef(w, "\nOr install the agent chart in a cluster with:\n\n%s\n",
					helmInstallCommand(chart, cfg.Hub, caFile, qualified, tok.GetToken()))
			})
		},
	}
	create.Flags().StringVar(&env, "env", "", "environment the token enrolls into")
	create.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, at most 2h (default: the hub's, 2h)")
	create.Flags().StringVar(&chart, "chart", defaultAgentChart, "agent chart the printed helm install uses: an OCI reference, a repo/chart name or a path")
	cmd.AddCommand(create)
	return cmd
}

// helmInstallCommand renders the helm install of the agent chart that
// enrolls one agent with token, as shell words that paste as they are,
// one option per continued line. caFile is empty when the hub's
// certificate chains to a public root.
func helmInstallCommand(chart, hub, caFile, env, token string) string {
	lines := [][]string{
		{"helm", "install", "outpost-agent", chart},
		{"--namespace", "outpost-system", "--create-namespace"},
		{"--set", "hub.url=" + helmValue(hub)},
	}
	if caFile != "" {
		lines = append(lines, []string{"--set-file", "hub.caBundle=" + helmValue(caFile)})
	}
	lines = append(lines,
		[]string{"--set", "environment=" + helmValue(env)},
		[]string{"--set", "bootstrapToken.value=" + helmValue(token)})
	var b strings.Builder
	for i, words := range lines {
		if i == 0 {
			b.WriteString("  ")
		} else {
			b.WriteString(" \\\n    ")
		}
		for j, w := range words {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(shellQuote(w))
		}
	}
	return b.String()
}

// helmValue escapes what helm's --set parser would otherwise split on: a
// comma ends a value and a backslash escapes the next character.
func helmValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(s)
}

// shellQuote returns s as one POSIX shell word: bare when it holds only
// characters no shell treats specially, single-quoted otherwise.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
