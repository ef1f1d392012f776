package secret

import (
	"context"
	"errors"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/internal/seal"
)

// Options configures an Executor. Everything here is the agent's own
// configuration; nothing in a task can change it.
type Options struct {
	// Client reaches the cluster as the agent. Required. It needs
	// get/create/update/delete on Secrets and get/list/patch on
	// Deployments, StatefulSets and DaemonSets of the target namespaces;
	// never update or delete on workloads.
	Client kubernetes.Interface
	// Keyring returns the environment's keyring, such as
	// sealk8s.Store.Load. Required.
	Keyring func(ctx context.Context) (*seal.Keyring, error)
	// Env is the environment the agent serves ("tenant/env"); a value
	// sealed for another one is refused. Required.
	Env string
	// Logger receives one record per task. Nil discards.
	Logger *slog.Logger
}

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	if o.Client == nil {
		return errors.New("secret: options: Client is required")
	}
	if o.Keyring == nil {
		return errors.New("secret: options: Keyring is required")
	}
	if o.Env == "" {
		return errors.New("secret: options: Env is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
