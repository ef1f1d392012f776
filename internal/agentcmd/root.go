package agentcmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/agent/tfdrift"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/httpcall"
	"github.com/outposthq/outpost/internal/redact"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/transport"
	"github.com/outposthq/outpost/internal/vault"
)

// Version is set at build time.
var Version = "dev"

type flags struct {
	hub                string
	caFile             string
	bootstrapToken     string
	bootstrapTokenFile string
	environment        string
	identityFile       string
	concurrency        int
	vaultFile          string
	internalCAFile     string
	forcePoll          bool
	logLevel           string
	logJSON            bool
	// identityFileSet is true when the operator chose an identity file.
	identityFileSet bool
	kube            kubeFlags
	reconcile       reconcileFlags
	terraform       terraformFlags
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// NewRootCommand returns the outpost-agent command.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	f := &flags{}
	cmd := &cobra.Command{
		Use:           "outpost-agent",
		Short:         "Outpost agent: dials out to the hub and runs tasks in this environment",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.identityFileSet = identityFileChosen(cmd.Flags())
			a, rec, err := build(f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if rec == nil {
				return a.Start(cmd.Context())
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return a.Start(ctx) })
			g.Go(func() error { return rec.run(ctx) })
			return g.Wait()
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f.bind(cmd.Flags())
	cmd.AddCommand(newKeysCommand())
	return cmd
}

// bind registers the agent's flags on fl.
func (f *flags) bind(fl *pflag.FlagSet) {
	defaultIdentity := filepath.Join(env("XDG_STATE_HOME", filepath.Join(os.Getenv("HOME"), ".local", "state")), "outpost", "agent-identity.json")
	fl.StringVar(&f.hub, "hub", env("OUTPOST_HUB", ""), "hub URL, https:// only (env OUTPOST_HUB)")
	fl.StringVar(&f.caFile, "ca-file", env("OUTPOST_CA_FILE", ""), "extra CA bundle for the hub's certificate (env OUTPOST_CA_FILE)")
	fl.StringVar(&f.bootstrapToken, "bootstrap-token", "", "single-use enrollment token (prefer --bootstrap-token-file or env OUTPOST_BOOTSTRAP_TOKEN)")
	fl.StringVar(&f.bootstrapTokenFile, "bootstrap-token-file", env("OUTPOST_BOOTSTRAP_TOKEN_FILE", ""), "file holding the enrollment token")
	fl.StringVar(&f.environment, "environment", env("OUTPOST_ENVIRONMENT", ""), "tenant/environment this agent serves; enrollment into another is refused")
	fl.StringVar(&f.identityFile, "identity-file", env("OUTPOST_IDENTITY_FILE", defaultIdentity), "where the agent keeps its key and id (mode 0600) when there is no cluster; with one the identity lives in --identity-secret unless this is set")
	fl.IntVar(&f.concurrency, "concurrency", agent.DefaultConcurrency, "tasks run at once")
	fl.StringVar(&f.vaultFile, "vault-file", env(vault.EnvLocalPath, ""), "local JSON vault for vault://local/<path>/<key> references (env "+vault.EnvLocalPath+"); "+
		"with a cluster, vault://k8s/<secret>/<key> also reads key <key> of Secret <secret> in the agent's --namespace (needs only \"get\" on that Secret)")
	fl.StringVar(&f.internalCAFile, "internal-ca-file", env("OUTPOST_INTERNAL_CA_FILE", ""), "extra CA bundle for internal endpoints called by http tasks")
	fl.BoolVar(&f.forcePoll, "force-poll", false, "long-poll instead of holding a Watch stream")
	fl.StringVar(&f.logLevel, "log-level", env("OUTPOST_LOG_LEVEL", "info"), "debug, info, warn or error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	f.kube.bind(fl)
	f.reconcile.bind(fl)
	f.terraform.bind(fl)
}

// build makes the agent and, with a cluster, the reconciler that runs
// beside it (nil without one, or with --no-reconcile).
func build(f *flags, stderr io.Writer) (*agent.Agent, *reconciling, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	// The process redactor: see redact.go.
	proc := redact.New()
	log := newLogger(stderr, lvl, f.logJSON, proc)
	if f.hub == "" {
		return nil, nil, errors.New("--hub is required (or env OUTPOST_HUB)")
	}
	token := f.bootstrapToken
	if token == "" {
		token = os.Getenv("OUTPOST_BOOTSTRAP_TOKEN")
	}
	if f.bootstrapTokenFile != "" {
		b, err := os.ReadFile(f.bootstrapTokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("bootstrap token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	proc.AddSecret(token)
	// The cluster comes first: it adds the k8s vault provider to the
	// resolver the executors share.
	k, ok, err := f.kube.setup(log)
	if err != nil {
		return nil, nil, err
	}
	resolver, err := newResolver(f.vaultFile, k.vault)
	if err != nil {
		return nil, nil, err
	}
	internal, err := transport.NewClient(transport.Options{CAFile: f.internalCAFile})
	if err != nil {
		return nil, nil, err
	}
	httpExec, err := httpcall.New(httpcall.Options{Client: internal, Vault: resolver, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	executors := map[string]executor.Executor{taskspec.KindHTTP: httpExec}
	var identity agent.IdentityStore = agent.FileIdentity{Path: f.identityFile}
	var keys agent.EnvironmentKeys // stays a nil interface without a cluster
	var rec *reconciling
	var desired agent.DesiredState // nil without a reconciler
	var desiredCache agent.DesiredCache
	var tf *terraformCluster // nil without a cluster
	if ok {
		keys = k.keys
		if rec, err = f.reconcile.setup(k.cluster, k.client, log); err != nil {
			return nil, nil, err
		}
		if rec != nil {
			desired = rec.rec
			desiredCache = agent.SecretDesiredCache{Client: k.client, Namespace: k.cluster.Namespace, Name: agent.DefaultDesiredStateSecret}
		}
		maps.Copy(executors, k.kinds)
		helmExec, err := k.newHelm(resolver, internal)
		if err != nil {
			return nil, nil, err
		}
		executors[taskspec.KindHelm] = helmExec
		holder, err := f.reconcile.id()
		if err != nil {
			return nil, nil, err
		}
		tf = &terraformCluster{cluster: k.cluster, kube: &f.kube, client: k.taskClient, holder: holder}
		if f.identityFileSet {
			log.Info("keeping the identity in a file, as --identity-file asks, not in a Secret", "identity_file", f.identityFile)
		} else {
			identity = k.identity
		}
	} else {
		log.Info("no Kubernetes cluster configured (no --kubeconfig and not in a pod); manifests, helm and secret tasks are not available")
	}
	tfExec, err := f.terraform.setup(tf, resolver, log)
	if err != nil {
		return nil, nil, err
	}
	var tfDesired agent.TerraformDesired // nil without a drift checker
	if tfExec != nil {
		executors[taskspec.KindTerraform] = tfExec
		switch {
		case rec == nil:
		case f.terraform.driftInterval == 0:
			log.Info("terraform releases are not checked for drift: --terraform-drift-interval is 0")
		default:
			newRedactor := func() tfdrift.Redactor { return redact.NewChild(proc) }
			if err := rec.checkTerraform(tfExec, f.terraform.driftInterval, newRedactor, log); err != nil {
				return nil, nil, err
			}
			tfDesired = rec.drift
		}
	}
	a, err := agent.New(agent.Options{
		HubURL:             f.hub,
		CAFile:             f.caFile,
		Identity:           identity,
		BootstrapToken:     token,
		Environment:        f.environment,
		Executors:          executors,
		Concurrency:        f.concurrency,
		NewRedactor:        attemptRedactors(proc),
		Logger:             log,
		Version:            Version,
		ForcePoll:          f.forcePoll,
		EnvironmentKeys:    keys,
		KeyRefreshInterval: f.kube.keyRefresh,
		Desired:            desired,
		Terraform:          tfDesired,
		DesiredCache:       desiredCache,
	})
	if err != nil {
		return nil, nil, err
	}
	if rec != nil {
		rec.attach(a)
	}
	return a, rec, nil
}

// newResolver returns the resolver for vault references: the local vault
// file when one is named, plus the providers a cluster adds (see
// kubeSetup.vault).
func newResolver(vaultFile string, cluster map[string]vault.Provider) (*vault.Resolver, error) {
	providers := map[string]vault.Provider{}
	if vaultFile != "" {
		local, err := vault.NewLocal(vault.LocalOptions{Path: vaultFile})
		if err != nil {
			return nil, err
		}
		providers[vault.LocalProviderName] = local
	}
	maps.Copy(providers, cluster)
	return vault.NewResolver(vault.ResolverOptions{Providers: providers})
}
