package hub

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var taskStates = map[store.TaskState]outpostv1.TaskState{
	store.StateQueued:    outpostv1.TaskState_TASK_STATE_QUEUED,
	store.StateLeased:    outpostv1.TaskState_TASK_STATE_LEASED,
	store.StateSucceeded: outpostv1.TaskState_TASK_STATE_SUCCEEDED,
	store.StateFailed:    outpostv1.TaskState_TASK_STATE_FAILED,
	store.StateCancelled: outpostv1.TaskState_TASK_STATE_CANCELLED,
}

func stateFromProto(s outpostv1.TaskState) store.TaskState {
	for k, v := range taskStates {
		if v == s {
			return k
		}
	}
	return ""
}

// envName returns an environment's name, or its ID when it cannot be read.
func (h *Hub) envName(ctx context.Context, id string) string {
	if env, err := h.environment(ctx, id); err == nil {
		return env.Name
	}
	return id
}

func (h *Hub) taskToProto(ctx context.Context, t store.Task) *outpostv1.Task {
	envName := h.envName(ctx, t.EnvironmentID)
	return &outpostv1.Task{
		Id:              t.ID,
		Tenant:          t.Tenant,
		Environment:     envName,
		Kind:            t.Kind,
		Spec:            t.Spec,
		ConflictKeys:    t.ConflictKeys,
		Artifacts:       t.Artifacts,
		MaxAttempts:     int32(min(t.MaxAttempts, MaxMaxAttempts)), //nolint:gosec // clamped
		Deadline:        ts(t.Deadline),
		State:           taskStates[t.State],
		Attempt:         t.Attempt,
		AgentId:         t.AgentID,
		CreatedAt:       ts(t.CreatedAt),
		UpdatedAt:       ts(t.UpdatedAt),
		FinishedAt:      ts(t.FinishedAt),
		LeaseExpiresAt:  ts(t.LeaseExpiresAt),
		NotBefore:       ts(t.NotBefore),
		CancelRequested: t.CancelRequested,
		Result:          t.Result,
		Error:           t.Error,
	}
}

func (h *Hub) agentToProto(ctx context.Context, a store.Agent) *outpostv1.Agent {
	envName := h.envName(ctx, a.EnvironmentID)
	return &outpostv1.Agent{
		Id:             a.ID,
		Tenant:         a.Tenant,
		Environment:    envName,
		Hostname:       a.Hostname,
		Version:        a.Version,
		EnrolledAt:     ts(a.EnrolledAt),
		LastSeenAt:     ts(a.LastSeenAt),
		Disabled:       a.Disabled,
		Connected:      !a.Disabled && h.notifier.connected(a.ID),
		KeyFingerprint: auth.Fingerprint(a.PublicKey),
	}
}

func auditToProto(e audit.Event) *outpostv1.AuditEvent {
	return &outpostv1.AuditEvent{
		Seq:         e.Seq,
		Time:        ts(e.Time),
		Tenant:      e.Tenant,
		Environment: e.Environment,
		Actor:       e.Actor,
		Action:      e.Action,
		Subject:     e.Subject,
		Details:     e.Details,
		PrevHash:    e.PrevHash,
		Hash:        e.Hash,
	}
}
