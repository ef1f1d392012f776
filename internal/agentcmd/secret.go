package agentcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/secret"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/seal/sealk8s"
)

// errKeyringNotLoaded is returned for a secret task that arrives before the
// agent knows its environment; it is retried.
var errKeyringNotLoaded = errors.New("secret: the environment keyring is not loaded yet; the task is retried")

// environmentKeyring is the environment's keyring as the agent uses it,
// kept in a Secret of the agent's namespace (sealk8s): the agent publishes
// its public halves (agent.EnvironmentKeys) and the secret executor opens
// values with it (executor.Executor for taskspec.KindSecret).
//
// The environment is known only once the agent's identity is established,
// so the first PublicKeys call binds it and builds the executor; the agent
// makes that call before it claims a task.
//
// The keyring is read from its Secret for every secret task, with no
// cache: a rotation or retirement by any replica (or by an operator with
// sealk8s) applies to the very next task, and a value sealed to a version
// this replica has not seen yet never fails for a stale copy. That costs
// one GET of a small Secret next to the task's own reads and writes.
type environmentKeyring struct {
	store  *sealk8s.Store
	client kubernetes.Interface
	where  string // namespace/name of the keyring Secret, for logs
	log    *slog.Logger

	mu     sync.Mutex
	env    string
	exec   *secret.Executor
	loaded bool // a keyring has been read or created before
}

var (
	_ agent.EnvironmentKeys = (*environmentKeyring)(nil)
	_ executor.Executor     = (*environmentKeyring)(nil)
)

// PublicKeys binds env on its first call, then loads (or creates) the
// keyring and returns its public halves. It refuses another environment
// than the one bound: one keyring Secret serves one environment.
func (k *environmentKeyring) PublicKeys(ctx context.Context, env string) ([]seal.PublicKey, error) {
	if err := k.bind(env); err != nil {
		return nil, err
	}
	kr, err := k.keyring(ctx)
	if err != nil {
		return nil, err
	}
	versions := kr.Versions()
	out := make([]seal.PublicKey, 0, len(versions))
	for _, v := range versions {
		key, err := kr.Key(v)
		if err != nil {
			return nil, err
		}
		out = append(out, key.Public())
	}
	return out, nil
}

// Execute runs a secret task with the executor bound to the environment.
func (k *environmentKeyring) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	k.mu.Lock()
	exec := k.exec
	k.mu.Unlock()
	if exec == nil {
		return nil, errKeyringNotLoaded
	}
	return exec.Execute(ctx, t)
}

func (k *environmentKeyring) bind(env string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.env != "" {
		if k.env != env {
			return fmt.Errorf("secret: the agent serves %s, not %s", k.env, env)
		}
		return nil
	}
	exec, err := secret.New(secret.Options{Client: k.client, Keyring: k.keyring, Env: env, Logger: k.log})
	if err != nil {
		return err
	}
	k.env, k.exec = env, exec
	return nil
}

// keyring reads the bound environment's keyring from its Secret, creating
// it when there is none.
func (k *environmentKeyring) keyring(ctx context.Context) (*seal.Keyring, error) {
	k.mu.Lock()
	env, loadedBefore := k.env, k.loaded
	k.mu.Unlock()
	if env == "" {
		return nil, errKeyringNotLoaded
	}
	kr, created, err := k.store.LoadOrCreate(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("environment keyring %s: %w", k.where, err)
	}
	k.mu.Lock()
	k.loaded = true
	k.mu.Unlock()
	if created {
		newest := kr.Newest()
		if loadedBefore {
			// Someone deleted the Secret: the old private keys are gone.
			k.log.Warn("the environment key Secret was missing and a new key was created; values sealed to the lost key cannot be opened, set them again",
				"secret", k.where, "key", newest)
		} else {
			k.log.Info("created the environment key", "secret", k.where, "key", newest)
		}
	}
	return kr, nil
}
