package terraform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/executor"
)

// When the backend cannot save the state after an apply, the CLI writes
// it to errored.tfstate in its working directory, which the run removes:
// the executor pushes it back, or keeps it in a Secret.
const (
	erroredStateFile = "errored.tfstate"
	// erroredSecretPrefix starts the Secret that keeps a state no push
	// could save: tfstate-errored-<workspace>, its state under
	// erroredSecretKey.
	erroredSecretPrefix = "tfstate-errored-" //nolint:gosec // a name prefix, not a credential
	erroredSecretKey    = "tfstate"
	// statePushAttempts and statePushWait space the pushes of an errored
	// state; recoverTimeout bounds them all, even after the run's context
	// ended.
	statePushAttempts = 3
	recoverTimeout    = time.Minute
)

var statePushWait = backoff.Policy{Base: time.Second, Max: 4 * time.Second}

// ErrStateNotSaved reports an apply whose state the backend did not save
// and no push could save either: the state is kept aside (see the error)
// and must be pushed back by an operator before the workspace is used
// again. Terminal.
var ErrStateNotSaved = errors.New("state not saved")

// recoverState handles a failed apply: when the CLI left errored.tfstate
// (the backend did not save the state) it pushes it back, a few times,
// and then fails retryably saying so; if no push succeeded it keeps the
// state in a Secret (or, without the kubernetes backend, a file beside
// the local state) and fails terminally with how to push it back. The
// state is never logged. Without errored.tfstate it returns applyErr.
func (r *run) recoverState(ctx context.Context, applyErr error) error {
	path := filepath.Join(r.tf.WorkingDir(), erroredStateFile)
	state, err := os.ReadFile(path) //nolint:gosec // the run's own directory
	if errors.Is(err, os.ErrNotExist) {
		return applyErr
	}
	if err != nil {
		r.log.Error("terraform errored state unreadable", "error", err.Error())
		return applyErr
	}
	defer clear(state)
	r.log.Warn("terraform apply could not save its state; pushing it back")

	// The pushes go on after the run's context ended (a timeout must not
	// lose the state), but never once the fence is lost: another run may
	// hold the workspace.
	base := context.WithoutCancel(ctx)
	if r.fence != nil {
		base = r.fence.held
	}
	pctx, cancel := context.WithTimeout(base, recoverTimeout)
	defer cancel()
	var pushErr error
	for n := range statePushAttempts {
		if pctx.Err() != nil {
			break
		}
		if pushErr = r.tf.StatePush(pctx, path); pushErr == nil {
			r.log.Warn("terraform errored state pushed back")
			return fmt.Errorf("%w; the backend did not save the state, which was recovered from %s and pushed back: retry", applyErr, erroredStateFile)
		}
		r.log.Warn("terraform errored state push failed", "error", strings.TrimSpace(r.redact(pushErr.Error())))
		if n+1 < statePushAttempts {
			if statePushWait.Sleep(pctx, int64(n)) != nil {
				break
			}
		}
	}
	where, how, err := r.keepState(base, state)
	if err != nil {
		r.log.Error("terraform errored state could not be kept", "error", err.Error())
		return executor.Terminal(fmt.Errorf("%w: %w; the backend did not save the state of this apply and it could not be kept (%w): the workspace's state misses what the apply did; import those resources or restore the state before running it again", ErrStateNotSaved, applyErr, err))
	}
	r.log.Error("terraform errored state kept for an operator", "kept_in", where)
	return executor.Terminal(fmt.Errorf("%w: %w; the backend did not save the state of this apply and pushing it back failed; it is kept in %s: push it back with `%s`, from the module's directory initialized with the workspace's backend, then run the task again", ErrStateNotSaved, applyErr, where, how))
}

// keepState stores an errored state where an operator finds it and
// returns where and the command that pushes it back.
func (r *run) keepState(ctx context.Context, state []byte) (where, how string, err error) {
	ctx, cancel := context.WithTimeout(ctx, fenceReleaseTimeout)
	defer cancel()
	if r.e.opts.KubeBackend == nil {
		path := filepath.Join(r.e.opts.LocalStateDir, r.spec.Workspace+".errored.tfstate")
		// The workspace is a validated DNS label.
		if err := os.WriteFile(path, state, 0o600); err != nil { //nolint:gosec // see above
			return "", "", err
		}
		return "file " + path, "tofu state push " + path, nil
	}
	ns, name := r.e.opts.KubeBackend.Namespace, erroredSecretPrefix+r.spec.Workspace
	secrets := r.e.opts.Kube.CoreV1().Secrets(ns)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{labelManagedBy: managedBy, labelWorkspace: r.spec.Workspace},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{erroredSecretKey: state},
	}
	_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// An earlier errored state nobody pushed back: this one, later,
		// replaces it.
		var cur *corev1.Secret
		if cur, err = secrets.Get(ctx, name, metav1.GetOptions{}); err == nil {
			cur.Labels, cur.Data = sec.Labels, sec.Data
			_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("save Secret %s/%s: %w", ns, name, err)
	}
	how = fmt.Sprintf("kubectl get secret -n %s %s -o jsonpath='{.data.%s}' | base64 -d > %s && tofu state push %s",
		ns, name, erroredSecretKey, erroredStateFile, erroredStateFile)
	return "Secret " + ns + "/" + name, how, nil
}
