package terraform

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stateLockSummary is the summary of the CLI's diagnostic for a state
// somebody else has locked; stateLockedText is the kubernetes backend's
// own error, which init reports under "Error loading state" when it
// meets a lock on a workspace without state yet.
const (
	stateLockSummary = "Error acquiring the state lock"
	stateLockedText  = "the state is already locked by another"
)

// The OpenTofu kubernetes backend (internal/backend/remote-state/kubernetes)
// locks the state Secret tfstate-default-<workspace> with a Lease
// lock-tfstate-default-<workspace> whose holderIdentity is the lock ID and
// whose annotation holds the lock's JSON description. The Lease stays
// after an unlock, without holder.
const (
	backendLockPrefix     = "lock-tfstate-default-"
	backendLockAnnotation = "app.terraform.io/lock-info"
)

// Log keys of a broken lock. The lock's Info field is free text and is
// never logged.
const (
	logLockWho       = "lock_who"
	logLockOperation = "lock_operation"
	logLockCreated   = "lock_created"
)

// lockInfo is the part of the CLI's lock description the executor uses.
type lockInfo struct {
	ID        string `json:"ID"`
	Operation string `json:"Operation"`
	Who       string `json:"Who"`
	Created   string `json:"Created"`
}

// isStateLocked reports whether the CLI's diagnostics say another client
// holds the state lock.
func isStateLocked(msg string) bool {
	return strings.Contains(msg, stateLockSummary) || strings.Contains(msg, stateLockedText)
}

// parseLockInfo reads the "Lock Info:" block the CLI prints with a lock
// error. Missing fields stay empty.
func parseLockInfo(msg string) lockInfo {
	var li lockInfo
	_, block, ok := strings.Cut(msg, "Lock Info:")
	if !ok {
		return li
	}
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "ID":
			li.ID = v
		case "Operation":
			li.Operation = v
		case "Who":
			li.Who = v
		case "Created":
			li.Created = v
		}
	}
	return li
}

// describe names the lock's holder for an error or a log line.
func (li lockInfo) describe() string {
	who := li.Who
	if who == "" {
		who = "an unknown client"
	}
	s := who
	if li.Operation != "" {
		s += " (" + li.Operation
		if li.Created != "" {
			s += " since " + li.Created
		}
		s += ")"
	}
	return s
}

// backendLock reads the state lock of the workspace from the kubernetes
// backend's Lease. held is false when nobody holds it (any more).
func (r *run) backendLock(ctx context.Context) (li lockInfo, held bool, err error) {
	name := backendLockPrefix + r.spec.Workspace
	lease, err := r.e.opts.Kube.CoordinationV1().Leases(r.e.opts.KubeBackend.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return li, false, nil
	}
	if err != nil {
		return li, false, fmt.Errorf("read the state lock Lease %s: %w", name, err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return li, false, nil
	}
	if raw := lease.Annotations[backendLockAnnotation]; raw != "" {
		// A malformed description only loses the details logged.
		_ = json.Unmarshal([]byte(raw), &li)
	}
	li.ID = *lease.Spec.HolderIdentity
	return li, true, nil
}

// breakLock force-unlocks a state lock left by a run that is provably
// gone: this run holds the workspace's fence, which the lock's holder must
// have held and lost (and so stopped its CLI) for this run to get it. That
// holds only for a lock the previous holder of the fence (or this host)
// took before this run claimed it; any other lock, such as a person's
// tofu against the same backend or an agent that predates the fence, is
// left alone with a retryable ErrStateLocked.
func (r *run) breakLock(ctx context.Context) error {
	li, held, err := r.backendLock(ctx)
	if err != nil {
		return err
	}
	if !held {
		// Released since the CLI looked.
		return nil
	}
	created, perr := time.Parse(time.RFC3339Nano, li.Created)
	if perr == nil {
		li.Created = created.UTC().Format(time.RFC3339)
	}
	if perr != nil || !created.Before(r.fence.acquired) || !r.fence.ranOn(lockHost(li.Who)) {
		r.log.Warn("terraform state locked by another client: not breaking it",
			logLockWho, li.Who, logLockOperation, li.Operation, logLockCreated, li.Created)
		return fmt.Errorf("%w: workspace %s is locked by %s; not an Outpost run, so it is not broken: unlock it with `tofu force-unlock` once that run is over",
			ErrStateLocked, r.spec.Workspace, li.describe())
	}
	r.log.Warn("terraform state lock left by a run that is gone: force-unlocking it",
		logLockWho, li.Who, logLockOperation, li.Operation, logLockCreated, li.Created)
	if err := r.tf.ForceUnlock(ctx, li.ID); err != nil {
		return fmt.Errorf("force-unlock: %s", strings.TrimSpace(r.redact(err.Error())))
	}
	return nil
}

// lockHost returns the host of a lock's Who, which OpenTofu writes as
// user@host.
func lockHost(who string) string {
	i := strings.LastIndexByte(who, '@')
	if i < 0 {
		return ""
	}
	return who[i+1:]
}
