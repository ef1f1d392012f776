package cli

import (
	"io"
	"strconv"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

func (a *app) newEnvCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "env",
		Aliases: []string{"environment", "environments"},
		Short:   "Create, list and inspect environments",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "create NAME",
		Short: "Create an environment in your tenant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.CreateEnvironment(cmd.Context(), connect.NewRequest(&v1.CreateEnvironmentRequest{Name: args[0]}))
			if err != nil {
				return apiError("create environment "+args[0], err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				a.environmentTable(w, []*v1.Environment{res.Msg.GetEnvironment()})
			})
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List the environments of your tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.ListEnvironments(cmd.Context(), connect.NewRequest(&v1.ListEnvironmentsRequest{}))
			if err != nil {
				return apiError("list environments", err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				a.environmentTable(w, res.Msg.GetEnvironments())
			})
		},
	}, a.newEnvStatusCommand())
	return cmd
}

func (a *app) environmentTable(w io.Writer, envs []*v1.Environment) {
	row(w, "ENVIRONMENT", "AGENTS", "CREATED")
	for _, e := range envs {
		row(w, envName(e.GetTenant(), e.GetName()), strconv.Itoa(int(e.GetAgents())), a.when(e.GetCreatedAt()))
	}
}
