package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/taskspec"
)

// ErrNoEnvironmentKey is returned when no agent of the environment has
// published a key to seal to.
var ErrNoEnvironmentKey = errors.New("no environment key")

func (a *app) newSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "secret",
		Aliases: []string{"secrets"},
		Short:   "Set, list and delete secrets sealed to an environment's key",
		Long: `Secrets are sealed on this machine to the public key the environment's
agent published (age X25519): the hub stores and forwards only ciphertext,
and only the agent opens it, writes the Kubernetes Secret and restarts the
workloads annotated with outpost.dev/restart-on-secrets.

ENV is an environment of your tenant, as "prod" or "acme/prod".`,
	}
	cmd.AddCommand(a.newSecretSetCommand(), a.newSecretListCommand(), a.newSecretHistoryCommand(),
		a.newSecretDeleteCommand(), a.newSecretKeysCommand())
	return cmd
}

// secretEnv is an ENV argument: the name the API takes and the
// "tenant/env" a value is sealed for.
type secretEnv struct {
	name, id string
}

// dialSecretEnv connects to the hub and resolves the ENV argument arg.
func (a *app) dialSecretEnv(ctx context.Context, arg string) (outpostv1connect.OperatorServiceClient, secretEnv, error) {
	client, _, err := a.dial()
	if err != nil {
		return nil, secretEnv{}, err
	}
	env, err := resolveSecretEnv(ctx, client, arg)
	return client, env, err
}

// resolveSecretEnv checks arg against the token's tenant (one WhoAmI).
func resolveSecretEnv(ctx context.Context, client outpostv1connect.OperatorServiceClient, arg string) (secretEnv, error) {
	tenant, name, qualified := strings.Cut(arg, "/")
	if !qualified {
		tenant, name = "", arg
	}
	if name == "" || strings.Contains(name, "/") || (qualified && tenant == "") {
		return secretEnv{}, fmt.Errorf("environment %q: want NAME or TENANT/NAME", arg)
	}
	res, err := client.WhoAmI(ctx, connect.NewRequest(&v1.WhoAmIRequest{}))
	if err != nil {
		return secretEnv{}, apiError("who am I", err)
	}
	mine := res.Msg.GetTenant()
	if qualified && tenant != mine {
		return secretEnv{}, fmt.Errorf("environment %s is not in your tenant %s; log in with a token of tenant %s", arg, mine, tenant)
	}
	return secretEnv{name: name, id: mine + "/" + name}, nil
}

func (a *app) newSecretSetCommand() *cobra.Command {
	var (
		namespace string
		envFiles  []string
		adopt     bool
		wait      waitFlags
	)
	cmd := &cobra.Command{
		Use:   "set ENV NAME [KEY=VALUE | KEY=@FILE | KEY=@-]... [--from-env-file FILE]... --namespace NS [--adopt] [--wait]",
		Short: "Seal values to the environment's key and have its agent write them as a Secret",
		Long: `set seals the values on this machine to the newest key the environment's
agent published and sends only the sealed value to the hub. The agent opens
it, writes Secret NAME in namespace NS and restarts the workloads annotated
with outpost.dev/restart-on-secrets: NAME. Each set replaces all keys of the
Secret.

Values come from arguments KEY=VALUE, from files (KEY=@FILE, the file's
bytes as they are), from stdin (KEY=@-, once), and from env files
(--from-env-file: KEY=VALUE lines, # comments, 'single' or "double" quotes
with \n \t \" \\ escapes, an optional "export "). "@@" starts a literal
value with "@". A key given twice is an error. Values on the command line
are visible to other users of this machine and kept in shell history:
prefer files or stdin for real secrets. No value is ever printed.

--namespace is required: the same name in two namespaces is two secrets. A
Secret that exists and is not Outpost's is left alone unless --adopt.`,
		Example: `  outpost secret set prod db --namespace shop password=@./db-password username=shop
  outpost secret set acme/prod api --namespace shop --from-env-file api.env --wait
  vault read -field=token secret/api | outpost secret set prod api --namespace shop token=@-`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wait.check("secret set"); err != nil {
				return err
			}
			if namespace == "" {
				return errors.New("secret set: pass --namespace NS, the Kubernetes namespace of the Secret")
			}
			if !taskspec.IsDNSLabel(namespace) {
				return fmt.Errorf("secret set: --namespace %q is not a Kubernetes namespace name (a DNS-1123 label)", namespace)
			}
			name := args[1]
			if err := checkSecretName(name); err != nil {
				return fmt.Errorf("secret set: %w", err)
			}
			values := newSecretValues()
			defer values.wipe()
			for _, arg := range args[2:] {
				if err := values.addArg(arg, a.opts.Stdin); err != nil {
					return fmt.Errorf("secret set: %w", err)
				}
			}
			for _, f := range envFiles {
				if err := values.addEnvFile(f); err != nil {
					return fmt.Errorf("secret set: %w", err)
				}
			}
			if len(values.values) == 0 {
				return errors.New("secret set: no values: pass KEY=VALUE, KEY=@FILE, KEY=@- or --from-env-file FILE")
			}
			ctx := cmd.Context()
			client, env, err := a.dialSecretEnv(ctx, args[0])
			if err != nil {
				return err
			}
			pub, err := sealingKey(ctx, client, env)
			if err != nil {
				return err
			}
			sealed, err := seal.Seal(pub, name, values.values)
			values.wipe()
			if err != nil {
				return fmt.Errorf("secret set: seal: %w", err)
			}
			doc, err := json.Marshal(sealed)
			if err != nil {
				return fmt.Errorf("secret set: encode the sealed value: %w", err)
			}
			res, err := client.SetSecret(ctx, connect.NewRequest(&v1.SetSecretRequest{
				Environment: env.name, Namespace: namespace, Name: name, Sealed: doc, Keys: values.keys(), Adopt: adopt,
			}))
			if err != nil {
				return apiError(fmt.Sprintf("set secret %s/%s in %s", namespace, name, env.id), err)
			}
			info := res.Msg.GetSecret()
			if err := a.printOutcome(res.Msg, "secret %s/%s in %s: version %d, %s sealed to key version %d (%s); task %s\n",
				namespace, name, env.id, info.GetVersion(), plural(int64(len(values.values)), "key"),
				pub.Version, pub.Fingerprint, orDash(res.Msg.GetTask().GetId())); err != nil {
				return err
			}
			if !wait.wait {
				return nil
			}
			return a.waitSecretTask(ctx, client, res.Msg.GetTask().GetId(), namespace+"/"+name, "written", wait.timeout)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&namespace, "namespace", "n", "", "Kubernetes namespace of the Secret (required)")
	fl.StringArrayVar(&envFiles, "from-env-file", nil, "read KEY=VALUE lines from this file (repeatable)")
	fl.BoolVar(&adopt, "adopt", false, "take over an existing Secret of that name that Outpost does not manage")
	wait.bind(cmd, "the agent has written the Secret", "the agent failed")
	return cmd
}

// sealingKey returns the newest key of env that is not retired.
func sealingKey(ctx context.Context, client outpostv1connect.OperatorServiceClient, env secretEnv) (seal.PublicKey, error) {
	res, err := client.GetEnvironmentKeys(ctx, connect.NewRequest(&v1.GetEnvironmentKeysRequest{Environment: env.name}))
	if err != nil {
		return seal.PublicKey{}, apiError("get the keys of "+env.id, err)
	}
	var newest *v1.EnvironmentKey
	for _, k := range res.Msg.GetKeys() {
		if !k.GetRetired() && (newest == nil || k.GetVersion() > newest.GetVersion()) {
			newest = k
		}
	}
	if newest == nil {
		return seal.PublicKey{}, fmt.Errorf("%w: no agent of environment %s has registered a key yet; start an agent first (`outpost token create --env %s`)",
			ErrNoEnvironmentKey, env.id, env.name)
	}
	pub := seal.PublicKey{Env: env.id, Version: int(newest.GetVersion()), Recipient: newest.GetRecipient(), Fingerprint: newest.GetFingerprint()}
	if err := pub.Validate(); err != nil {
		return seal.PublicKey{}, fmt.Errorf("the hub's key version %d of %s is unusable: %w", pub.Version, env.id, err)
	}
	return pub, nil
}

// waitSecretTask waits for a secret task as `task wait` does, printing one
// line instead of the task (whose spec holds the sealed value).
func (a *app) waitSecretTask(ctx context.Context, client outpostv1connect.OperatorServiceClient, id, what, done string, timeout time.Duration) error {
	if id == "" {
		return errors.New("the hub returned no task to wait for")
	}
	task, err := a.waitTask(ctx, client, id, timeout)
	if errors.Is(err, ErrWaitTimeout) {
		return &ExitError{Code: ExitTimeout, Err: err}
	}
	if err != nil {
		return err
	}
	switch task.GetState() {
	case v1.TaskState_TASK_STATE_FAILED:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w: secret %s: task %s after %s: %s", ErrTaskFailed, what, id, plural(task.GetAttempt(), "attempt"), orDash(task.GetError()))}
	case v1.TaskState_TASK_STATE_CANCELLED:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%w: secret %s: task %s", ErrTaskCancelled, what, id)}
	}
	outcome := secretOutcome(task.GetResult())
	a.notef("secret %s: %s (task %s)", what, cond(outcome == "", done, outcome), id)
	return nil
}

// secretOutcome reads the executor's outcome ("created", "skipped: ...")
// from a task result, "" when there is none.
func secretOutcome(result []byte) string {
	var r struct {
		Outcome   string            `json:"outcome"`
		Reason    string            `json:"reason"`
		Workloads []json.RawMessage `json:"workloads"`
	}
	if json.Unmarshal(result, &r) != nil || r.Outcome == "" {
		return ""
	}
	out := r.Outcome
	if r.Reason != "" {
		out += ": " + r.Reason
	}
	if n := len(r.Workloads); n > 0 {
		out += fmt.Sprintf("; %s restarted", plural(int64(n), "workload"))
	}
	return out
}

func checkSecretName(name string) error {
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return fmt.Errorf("secret name %q is not a Kubernetes Secret name (lowercase letters, digits, '-' and '.')", name)
	}
	return nil
}

func (a *app) newSecretListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list ENV",
		Short: "List an environment's secrets: keys and versions, never values",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, env, err := a.dialSecretEnv(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			res, err := client.ListSecrets(cmd.Context(), connect.NewRequest(&v1.ListSecretsRequest{Environment: env.name}))
			if err != nil {
				return apiError("list secrets of "+env.id, err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				row(w, "NAMESPACE", "NAME", "KEYS", "VERSION", "KEY-VERSION", "UPDATED", "BY", "STATE")
				for _, s := range res.Msg.GetSecrets() {
					row(w, s.GetNamespace(), s.GetName(), keyList(s.GetKeys()), strconv.FormatInt(s.GetVersion(), 10),
						keyVersion(s.GetKeyVersion()), a.ago(s.GetUpdatedAt()), orDash(s.GetUpdatedBy()), secretState(s))
				}
			})
		},
	}
}

// secretRef is NAME with --namespace, which may be left out when the
// name is unique in the environment.
type secretRef struct {
	namespace string
}

func (r *secretRef) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&r.namespace, "namespace", "n", "", "Kubernetes namespace of the Secret (default: the only one holding a secret of that name)")
}

func (r *secretRef) resolve(ctx context.Context, client outpostv1connect.OperatorServiceClient, env secretEnv, name string) (string, error) {
	if err := checkSecretName(name); err != nil {
		return "", err
	}
	if r.namespace != "" {
		return r.namespace, nil
	}
	res, err := client.ListSecrets(ctx, connect.NewRequest(&v1.ListSecretsRequest{Environment: env.name}))
	if err != nil {
		return "", apiError("find secret "+name, err)
	}
	var nss []string
	for _, s := range res.Msg.GetSecrets() {
		if s.GetName() == name {
			nss = append(nss, s.GetNamespace())
		}
	}
	switch len(nss) {
	case 0:
		return "", fmt.Errorf("secret %s: not found in %s; `outpost secret list %s` shows its secrets", name, env.id, env.name)
	case 1:
		return nss[0], nil
	}
	return "", fmt.Errorf("secret %s exists in namespaces %s of %s: pass --namespace", name, andList(nss), env.id)
}

func (a *app) newSecretHistoryCommand() *cobra.Command {
	var ref secretRef
	cmd := &cobra.Command{
		Use:   "history ENV NAME [--namespace NS]",
		Short: "List a secret's versions: keys, key version, who and when",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, name := cmd.Context(), args[1]
			client, env, err := a.dialSecretEnv(ctx, args[0])
			if err != nil {
				return err
			}
			ns, err := ref.resolve(ctx, client, env, name)
			if err != nil {
				return err
			}
			res, err := client.GetSecretHistory(ctx, connect.NewRequest(&v1.GetSecretHistoryRequest{Environment: env.name, Namespace: ns, Name: name}))
			if err != nil {
				return apiError(fmt.Sprintf("history of secret %s/%s in %s", ns, name, env.id), err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				row(w, "VERSION", "KEYS", "KEY-VERSION", "FINGERPRINT", "UPDATED", "BY", "TASK", "STATE")
				for _, s := range res.Msg.GetVersions() {
					row(w, strconv.FormatInt(s.GetVersion(), 10), keyList(s.GetKeys()), keyVersion(s.GetKeyVersion()),
						orDash(s.GetKeyFingerprint()), a.when(s.GetUpdatedAt()), orDash(s.GetUpdatedBy()), orDash(s.GetTaskId()), secretState(s))
				}
			})
		},
	}
	ref.bind(cmd)
	return cmd
}

func (a *app) newSecretDeleteCommand() *cobra.Command {
	var (
		ref  secretRef
		yes  bool
		wait waitFlags
	)
	cmd := &cobra.Command{
		Use:   "delete ENV NAME [--namespace NS] [--yes] [--wait]",
		Short: "Have the agent delete a secret's Kubernetes Secret",
		Long: `delete queues the task that deletes the Kubernetes Secret, if Outpost
manages it; the hub keeps the secret's history. On a terminal it asks
first; elsewhere pass --yes.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wait.check("secret delete"); err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[1]
			client, env, err := a.dialSecretEnv(ctx, args[0])
			if err != nil {
				return err
			}
			ns, err := ref.resolve(ctx, client, env, name)
			if err != nil {
				return err
			}
			if err := a.confirmDelete("secret delete", yes, fmt.Sprintf("Delete Secret %s/%s in %s? Workloads that mount it will fail to start.", ns, name, env.id)); err != nil {
				return err
			}
			res, err := client.DeleteSecret(ctx, connect.NewRequest(&v1.DeleteSecretRequest{Environment: env.name, Namespace: ns, Name: name}))
			if err != nil {
				return apiError(fmt.Sprintf("delete secret %s/%s in %s", ns, name, env.id), err)
			}
			if err := a.printOutcome(res.Msg, "secret %s/%s in %s: deleting (task %s)\n", ns, name, env.id, orDash(res.Msg.GetTask().GetId())); err != nil {
				return err
			}
			if !wait.wait {
				return nil
			}
			return a.waitSecretTask(ctx, client, res.Msg.GetTask().GetId(), ns+"/"+name, "deleted", wait.timeout)
		},
	}
	ref.bind(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	wait.bind(cmd, "the agent has deleted the Secret", "the agent failed")
	return cmd
}

func (a *app) newSecretKeysCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keys ENV",
		Short: "List the public keys an environment's agents published, which values are sealed to",
		Long: `keys lists the versions of the environment's public key. Values are sealed
to the newest version that is not retired. Compare a fingerprint with the
agent's log line "environment keys published" to check that the hub hands
out the agent's own key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, env, err := a.dialSecretEnv(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			res, err := client.GetEnvironmentKeys(cmd.Context(), connect.NewRequest(&v1.GetEnvironmentKeysRequest{Environment: env.name}))
			if err != nil {
				return apiError("get the keys of "+env.id, err)
			}
			if len(res.Msg.GetKeys()) == 0 && a.format == formatTable {
				a.notef("no agent of %s has registered a key yet", env.id)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				row(w, "VERSION", "FINGERPRINT", "STATE", "REGISTERED", "BY", "RECIPIENT")
				for _, k := range res.Msg.GetKeys() {
					row(w, strconv.Itoa(int(k.GetVersion())), k.GetFingerprint(), cond(k.GetRetired(), "retired", "active"),
						a.ago(k.GetRegisteredAt()), orDash(k.GetRegisteredBy()), k.GetRecipient())
				}
			})
		},
	}
}

// keyList shows up to three keys and how many more there are.
func keyList(keys []string) string {
	if len(keys) == 0 {
		return "-"
	}
	if len(keys) <= 3 {
		return strings.Join(keys, ",")
	}
	return strings.Join(keys[:3], ",") + fmt.Sprintf(",+%d", len(keys)-3)
}

func keyVersion(v int32) string {
	if v == 0 {
		return "-"
	}
	return "v" + strconv.Itoa(int(v))
}

// secretState is "deleted" for a deletion, else its task's state.
func secretState(s *v1.SecretInfo) string {
	state := "-"
	if s.GetTaskState() != v1.TaskState_TASK_STATE_UNSPECIFIED {
		state = stateName(s.GetTaskState())
	}
	if s.GetDeleted() {
		return "deleted (" + state + ")"
	}
	return state
}
