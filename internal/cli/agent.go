package cli

import (
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
)

func (a *app) newAgentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "agent",
		Aliases: []string{"agents"},
		Short:   "List and disable enrolled agents",
	}
	var env string
	list := &cobra.Command{
		Use:   "list [--env NAME]",
		Short: "List enrolled agents, of one environment or all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.ListAgents(cmd.Context(), connect.NewRequest(&v1.ListAgentsRequest{Environment: env}))
			if err != nil {
				return apiError("list agents", err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.agentTable(w, res.Msg.GetAgents()) })
		},
	}
	list.Flags().StringVar(&env, "env", "", "only agents of this environment")
	disable := &cobra.Command{
		Use:   "disable ID",
		Short: "Refuse an agent from its next call on",
		Long: `disable refuses the agent's next call to the hub and every one after it.
Use it when an agent's key may be compromised or its host is retired.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.DisableAgent(cmd.Context(), connect.NewRequest(&v1.DisableAgentRequest{AgentId: args[0]}))
			if err != nil {
				return apiError("disable agent "+args[0], err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.agentTable(w, []*v1.Agent{res.Msg.GetAgent()}) })
		},
	}
	cmd.AddCommand(list, disable)
	return cmd
}

func (a *app) agentTable(w io.Writer, agents []*v1.Agent) {
	row(w, "ID", "ENVIRONMENT", "HOSTNAME", "VERSION", "STATUS", "LAST SEEN", "ENROLLED")
	for _, ag := range agents {
		status := "offline"
		switch {
		case ag.GetDisabled():
			status = "disabled"
		case ag.GetConnected():
			status = "connected"
		}
		row(w, ag.GetId(), envName(ag.GetTenant(), ag.GetEnvironment()), orDash(ag.GetHostname()), orDash(ag.GetVersion()), status,
			a.ago(ag.GetLastSeenAt()), a.when(ag.GetEnrolledAt()))
	}
}
