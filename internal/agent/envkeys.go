package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/seal"
)

// DefaultKeyRefreshInterval is how often the agent publishes its
// environment's public keys again when nothing else prompts it.
const DefaultKeyRefreshInterval = 5 * time.Minute

// EnvironmentKeys is the environment keyring the agent publishes (DESIGN
// §5): the hub stores only these public halves, the CLI seals values to
// them, and the private keys stay wherever the implementation keeps them
// (agentcmd keeps them in a Secret of the agent's namespace).
type EnvironmentKeys interface {
	// PublicKeys returns the public key of every version env's keyring
	// holds, creating the keyring when there is none. env is the agent's
	// environment ("tenant/env") from its identity. The agent calls it
	// once after its identity is established and before it claims any
	// task, then before each publication.
	PublicKeys(ctx context.Context, env string) ([]seal.PublicKey, error)
}

// noteConnected is called by wakeLoop each time a Watch stream or a poll
// gets through after none did. Every time but the first is a reconnect,
// after which the keys are published again: the hub may have restarted
// onto a store that lost them.
func (a *Agent) noteConnected() {
	// What changed while the agent was away is fetched again.
	a.RefreshDesired()
	a.connects++
	if a.connects == 1 {
		return
	}
	select {
	case a.reconnected <- struct{}{}:
	default:
	}
}

// keyLoop publishes the environment's public keys after each reconnect
// and every KeyRefreshInterval (a replica that rotated the keyring may not
// be the one that told the hub), retrying transient failures with backoff.
func (a *Agent) keyLoop(ctx context.Context, failed bool) error {
	ticker := time.NewTicker(a.opts.KeyRefreshInterval)
	defer ticker.Stop()
	failures := int64(0)
	if failed {
		failures = 1
	}
	for {
		var retry <-chan time.Time
		var timer *time.Timer
		if failures > 0 {
			timer = time.NewTimer(a.opts.Reconnect.Delay(failures))
			retry = timer.C
		}
		select {
		case <-ctx.Done():
		case <-a.reconnected:
		case <-ticker.C:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		if a.publishKeys(ctx) {
			failures++
		} else {
			// Success, or a refusal that waits for the next reconnect or
			// tick: repeating it at once would only fill the log.
			failures = 0
		}
	}
}

// publishKeys reads the keyring's public halves and registers them with
// the hub. Failures are logged here; retry reports whether one may
// succeed soon (the cluster or the hub unreachable).
func (a *Agent) publishKeys(ctx context.Context) (retry bool) {
	env := a.session.environment()
	if env == "" {
		env = a.opts.Environment
	}
	log := a.opts.Logger.With("environment", env)
	if env == "" {
		err := errors.New("agent: the identity names no environment; enroll the agent again to serve secret tasks")
		log.Error("cannot publish the environment keys", "error", err)
		return false
	}
	keys, err := a.opts.EnvironmentKeys.PublicKeys(ctx, env)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("cannot load the environment keyring; secret tasks fail until it loads", "error", err)
		}
		return true
	}
	req := &outpostv1.RegisterEnvironmentKeysRequest{}
	for _, k := range keys {
		if k.Env != env {
			err := fmt.Errorf("agent: key version %d belongs to %s, not %s", k.Version, k.Env, env)
			log.Error("refusing to publish the environment keys", "error", err)
			return false
		}
		req.Keys = append(req.Keys, &outpostv1.EnvironmentKey{Version: clamp32(k.Version), Recipient: k.Recipient, Fingerprint: k.Fingerprint})
	}
	versions := describeKeys(keys)
	if _, err := a.client.RegisterEnvironmentKeys(ctx, connect.NewRequest(req)); err != nil {
		if ctx.Err() != nil {
			return false
		}
		if isTransient(err) {
			log.Warn("cannot publish the environment keys; retrying", "keys", versions, "error", err)
			return true
		}
		log.Error("the hub refused the environment keys; values cannot be sealed to a key it does not hold",
			"keys", versions, "error", err)
		return false
	}
	a.keysMu.Lock()
	changed := a.published != versions
	a.published = versions
	a.keysMu.Unlock()
	if changed {
		log.Info("environment keys published", "keys", versions)
	} else {
		log.Debug("environment keys published again", "keys", versions)
	}
	return false
}

// describeKeys names the versions and fingerprints, public values only,
// e.g. "1:3f2a...,2:9bc0...".
func describeKeys(keys []seal.PublicKey) string {
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b seal.PublicKey) int { return a.Version - b.Version })
	parts := make([]string, len(sorted))
	for i, k := range sorted {
		parts[i] = strconv.Itoa(k.Version) + ":" + k.Fingerprint
	}
	return strings.Join(parts, ",")
}

// environment is the environment of the established identity.
func (s *session) environment() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id.Environment
}
