package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/seal/sealk8s"
)

// keyFlags reach the environment keyring's Secret from outside the agent,
// as an operator with access to the agent's namespace does.
type keyFlags struct {
	kubeconfig, context, namespace, secret string
}

// newKeysCommand returns `outpost-agent keys`: rotation and retirement of
// the environment's age keys, run where the private keys live (they never
// leave the cluster, so the hub cannot do this).
func newKeysCommand() *cobra.Command {
	f := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate or retire the environment's sealing keys (in the agent's namespace)",
		Long: `The environment's age keys live in a Secret of the agent's namespace and
never leave it. To rotate: run "keys rotate" (the running agents publish the
new version within --environment-key-refresh, and the CLI seals new values to
it), set each secret again so it is sealed to the new key, then run
"keys retire OLD-VERSION". A retired key opens nothing any more.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the agent's cluster (env "+kube.EnvKubeconfig+" or "+kube.EnvKubeconfigStd+"); in a pod the service account is used without it")
	fl.StringVar(&f.context, "kube-context", "", "kubeconfig context to use instead of the current one")
	fl.StringVar(&f.namespace, "namespace", "", "the agent's namespace (default: env "+kube.EnvNamespace+", else the pod's namespace, else "+kube.DefaultNamespace+")")
	fl.StringVar(&f.secret, "environment-key-secret", env("OUTPOST_ENVIRONMENT_KEY_SECRET", sealk8s.DefaultName), "Secret in the agent's namespace that keeps the environment's keys")
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Add a new key version; values are sealed to it from now on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := f.store()
			if err != nil {
				return err
			}
			kr, err := store.Rotate(cmd.Context())
			if err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "environment %s now seals to key version %d; the agents publish it at their next key refresh\n", kr.Env(), kr.Newest().Version())
			return printKeyring(cmd.OutOrStdout(), kr)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "retire VERSION",
		Short: "Remove a key version: values sealed to it can no longer be opened",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := strconv.Atoi(args[0])
			if err != nil || version < 1 {
				return fmt.Errorf("retire: version %q is not a positive number", args[0])
			}
			store, err := f.store()
			if err != nil {
				return err
			}
			kr, err := store.Retire(cmd.Context(), version)
			if err != nil {
				return fmt.Errorf("retire: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key version %d of %s retired\n", version, kr.Env())
			return printKeyring(cmd.OutOrStdout(), kr)
		},
	})
	return cmd
}

func (f *keyFlags) store() (*sealk8s.Store, error) {
	cluster, err := kube.Load(kube.Options{Kubeconfig: f.kubeconfig, Context: f.context, Namespace: f.namespace, UserAgent: "outpost-agent/" + Version})
	if errors.Is(err, kube.ErrNotConfigured) {
		return nil, errors.New("no cluster: pass --kubeconfig, or run this in the agent's pod")
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	client, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return sealk8s.New(sealk8s.Options{Client: client.CoreV1(), Namespace: cluster.Namespace, Name: f.secret})
}

// printKeyring lists the versions a keyring holds: public halves only.
func printKeyring(w io.Writer, kr *seal.Keyring) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tFINGERPRINT\tRECIPIENT")
	for _, v := range kr.Versions() {
		k, err := kr.Key(v)
		if err != nil {
			return err
		}
		p := k.Public()
		fmt.Fprintf(tw, "%d\t%s\t%s\n", p.Version, p.Fingerprint, p.Recipient)
	}
	return tw.Flush()
}
