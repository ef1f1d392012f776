package helm

import (
	"fmt"
	"strconv"

	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// recoverPending marks a release record left pending-install,
// pending-upgrade or pending-rollback as failed, so the task can go on.
//
// A record stays pending only when the process running the operation died
// before finishing it: Helm itself never leaves one. The caller holds the
// release's conflict key (the hub leases one task per release at a time,
// and an agent whose lease lapses cancels its attempt), so no other
// operation on the release is in flight, and Helm can upgrade from a
// failed revision.
func (e *Executor) recoverPending(r *run, rel *release.Release) error {
	if rel.Labels[labelTask] == r.task.ID {
		if n, err := strconv.ParseInt(rel.Labels[labelAttempt], 10, 64); err == nil && n > r.task.Attempt {
			return fmt.Errorf("%w: attempt %d of this task is running revision %d; this is attempt %d", ErrStaleAttempt, n, rel.Version, r.task.Attempt)
		}
	}
	was := rel.Info.Status
	rel.SetStatus(rcommon.StatusFailed, fmt.Sprintf("interrupted while %s; marked failed by task %s attempt %d", was, r.task.ID, r.task.Attempt))
	if err := r.cfg.Releases.Update(rel); err != nil {
		return fmt.Errorf("mark interrupted revision %d failed: %w", rel.Version, err)
	}
	e.log.Info("helm release was left pending; marked failed", "task", r.task.ID, "release", rel.Name, "namespace", rel.Namespace, "revision", rel.Version, "was", was.String())
	return nil
}
