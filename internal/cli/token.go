package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

// maxBootstrapTTL is the longest life the hub grants a bootstrap token.
const maxBootstrapTTL = 2 * time.Hour

func (a *app) newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint agent bootstrap tokens",
	}
	var env string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --env NAME [--ttl 1h]",
		Short: "Mint a single-use token that enrolls one agent in an environment",
		Long: `create mints a bootstrap token: it enrolls one agent into the environment,
once, before it expires (at most 2h). The hub keeps only its hash, so the
token is shown this one time.`,
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
			a.notef("Warning: this bootstrap token is shown only once and enrolls one agent; the hub keeps only its hash.")
			if a.format != formatTable {
				return a.printMessage(tok, nil)
			}
			// The hub names the environment tenant/name, as the agent wants it.
			qualified := cmp.Or(tok.GetEnvironment(), env)
			return a.printTable(func(w io.Writer) {
				linef(w, "Bootstrap token for %s, expires %s:\n\n  %s\n\n", qualified, a.when(tok.GetExpiresAt()), tok.GetToken())
				linef(w, "Enroll an agent with:\n\n  outpost-agent --hub %s --bootstrap-token %s --environment %s\n",
					cfg.Hub, tok.GetToken(), qualified)
			})
		},
	}
	create.Flags().StringVar(&env, "env", "", "environment the token enrolls into")
	create.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, at most 2h (default: the hub's, 2h)")
	cmd.AddCommand(create)
	return cmd
}
