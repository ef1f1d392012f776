package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
)

// agentService implements the agent API.
type agentService struct {
	h *Hub
}

var _ outpostv1connect.AgentServiceHandler = (*agentService)(nil)

func (s *agentService) Challenge(ctx context.Context, _ *connect.Request[outpostv1.ChallengeRequest]) (*connect.Response[outpostv1.ChallengeResponse], error) {
	nonce := make([]byte, auth.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	exp := s.h.opts.Now().Add(DefaultNonceTTL)
	if err := s.h.store.CreateNonce(ctx, nonce, exp); err != nil {
		return nil, storeError("challenge", err)
	}
	return connect.NewResponse(&outpostv1.ChallengeResponse{Nonce: nonce, ExpiresAt: timestamppb.New(exp)}), nil
}

func (s *agentService) Enroll(ctx context.Context, req *connect.Request[outpostv1.EnrollRequest]) (*connect.Response[outpostv1.EnrollResponse], error) {
	m := req.Msg
	if len(m.GetBootstrapToken()) > auth.MaxTokenBytes || !strings.HasPrefix(m.GetBootstrapToken(), auth.PrefixBootstrapToken) {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("enroll: not a bootstrap token"))
	}
	if len(m.GetHostname()) > 253 || len(m.GetVersion()) > 64 {
		return nil, invalid("enroll: hostname or version too long")
	}
	// The signature is checked before anything is consumed, so a forged
	// request burns neither the nonce nor the token.
	if err := auth.VerifyEnroll(m.GetPublicKey(), m.GetNonce(), m.GetSignature()); err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("enroll: %w", err))
	}
	var expectedEnv string
	if want := m.GetEnvironment(); want != "" {
		tenant, name, ok := strings.Cut(want, "/")
		if !ok {
			return nil, invalid("enroll: environment %q is not <tenant>/<environment>", want)
		}
		env, err := s.h.store.GetEnvironmentByName(ctx, tenant, name)
		if err != nil {
			// Indistinguishable from a token for another environment.
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("enroll: bootstrap token is not valid for environment %s", want))
		}
		expectedEnv = env.ID
	}
	if err := s.h.store.ConsumeNonce(ctx, m.GetNonce(), s.h.opts.Now()); err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("enroll: nonce unknown, expired or already used; request a new challenge"))
	}
	now := s.h.opts.Now()
	agent, err := s.h.store.EnrollAgent(ctx, store.EnrollParams{
		TokenHash:             auth.HashToken(m.GetBootstrapToken()),
		ExpectedEnvironmentID: expectedEnv,
		Agent: store.Agent{
			ID:         auth.NewID("agt_"),
			PublicKey:  m.GetPublicKey(),
			Hostname:   m.GetHostname(),
			Version:    m.GetVersion(),
			EnrolledAt: now,
			LastSeenAt: now,
		},
		Now: now,
	})
	if errors.Is(err, store.ErrTokenInvalid) {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("enroll: bootstrap token unknown, expired, already used or for another environment; mint a new one with `outpost token create`"))
	}
	if err != nil {
		return nil, storeError("enroll", err)
	}
	env, err := s.h.environment(ctx, agent.EnvironmentID)
	if err != nil {
		return nil, storeError("enroll", err)
	}
	tok, exp, err := s.h.tokens.Issue(agent.ID, agent.Tenant, agent.EnvironmentID)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	s.h.opts.Logger.Info("agent enrolled", "agent", agent.ID, "tenant", env.Tenant, "environment", env.Name)
	return connect.NewResponse(&outpostv1.EnrollResponse{
		AgentId:     agent.ID,
		Environment: env.Ref(),
		Token:       &outpostv1.AccessToken{Token: tok, ExpiresAt: timestamppb.New(exp)},
	}), nil
}

func (s *agentService) RefreshToken(ctx context.Context, req *connect.Request[outpostv1.RefreshTokenRequest]) (*connect.Response[outpostv1.RefreshTokenResponse], error) {
	m := req.Msg
	if len(m.GetAgentId()) > 64 {
		return nil, invalid("refresh: agent id too long")
	}
	agent, err := s.h.store.GetAgent(ctx, m.GetAgentId())
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("refresh: unknown agent"))
	}
	if err := auth.VerifyRefresh(agent.PublicKey, m.GetNonce(), m.GetSignature(), agent.ID); err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("refresh: %w", err))
	}
	if err := s.h.store.ConsumeNonce(ctx, m.GetNonce(), s.h.opts.Now()); err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("refresh: nonce unknown, expired or already used; request a new challenge"))
	}
	if agent.Disabled {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("refresh: agent %s is disabled", agent.ID))
	}
	tok, exp, err := s.h.tokens.Issue(agent.ID, agent.Tenant, agent.EnvironmentID)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&outpostv1.RefreshTokenResponse{
		Token: &outpostv1.AccessToken{Token: tok, ExpiresAt: timestamppb.New(exp)},
	}), nil
}

func (s *agentService) Watch(ctx context.Context, req *connect.Request[outpostv1.WatchRequest], stream *connect.ServerStream[outpostv1.WatchResponse]) error {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return err
	}
	wake, unsubscribe := s.h.notifier.subscribe(caller.env.ID, caller.agent.ID)
	defer unsubscribe()

	interval := s.h.opts.Keepalive
	keepalive := func() error {
		return stream.Send(&outpostv1.WatchResponse{Event: &outpostv1.WatchResponse_Keepalive{Keepalive: &outpostv1.Keepalive{
			SentAt: timestamppb.New(s.h.opts.Now()), Interval: durationpb.New(interval),
		}}})
	}
	// The first keep-alive goes out at once: it tells the agent that the
	// stream passes its proxies, and the agent claims right after it, so
	// nothing enqueued before the subscription is missed.
	if err := keepalive(); err != nil {
		return err
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case w := <-wake:
			ev := &outpostv1.WatchResponse{Event: &outpostv1.WatchResponse_WorkAvailable{WorkAvailable: &outpostv1.WorkAvailable{}}}
			switch {
			case w.CancelTaskID != "":
				ev.Event = &outpostv1.WatchResponse_TaskCancelled{TaskCancelled: &outpostv1.TaskCancelled{TaskId: w.CancelTaskID}}
			case w.DesiredState:
				ev.Event = &outpostv1.WatchResponse_DesiredStateChanged{DesiredStateChanged: &outpostv1.DesiredStateChanged{}}
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-ticker.C:
			// A long stream re-checks its caller: a disabled agent or an
			// expired token ends it, and the agent must come back with a
			// fresh token.
			agent, err := s.h.store.GetAgent(ctx, caller.agent.ID)
			if err == nil && agent.Disabled {
				return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("agent %s is disabled", agent.ID))
			}
			if s.h.opts.Now().After(caller.tokenExpiry) {
				return connect.NewError(connect.CodeUnauthenticated, errors.New("access token expired; refresh and watch again"))
			}
			if err := keepalive(); err != nil {
				return err
			}
			s.h.notifier.seen(caller.agent.ID)
		}
	}
}

func (s *agentService) Poll(ctx context.Context, req *connect.Request[outpostv1.PollRequest]) (*connect.Response[outpostv1.PollResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	wait := s.h.opts.MaxPoll
	if d := req.Msg.GetWait(); d != nil && d.AsDuration() > 0 && d.AsDuration() < wait {
		wait = d.AsDuration()
	}
	wake, unsubscribe := s.h.notifier.subscribe(caller.env.ID, caller.agent.ID)
	defer unsubscribe()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	resp := &outpostv1.PollResponse{}
	select {
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	case <-timer.C:
		return connect.NewResponse(resp), nil
	case w := <-wake:
		s.addWake(resp, w)
	}
	// Gather what else is already pending, without waiting.
	for {
		select {
		case w := <-wake:
			s.addWake(resp, w)
		default:
			return connect.NewResponse(resp), nil
		}
	}
}

func (s *agentService) addWake(resp *outpostv1.PollResponse, w store.Wakeup) {
	switch {
	case w.CancelTaskID != "":
		resp.CancelledTaskIds = append(resp.CancelledTaskIds, w.CancelTaskID)
	case w.DesiredState:
		resp.DesiredStateChanged = true
	default:
		resp.WorkAvailable = true
	}
}

func (s *agentService) Claim(ctx context.Context, req *connect.Request[outpostv1.ClaimRequest]) (*connect.Response[outpostv1.ClaimResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	max := int(req.Msg.GetMaxTasks())
	if max <= 0 {
		return nil, invalid("claim: max_tasks must be positive")
	}
	max = min(max, maxClaimBatch)
	if len(req.Msg.GetKinds()) > 32 {
		return nil, invalid("claim: at most 32 kinds")
	}
	now := s.h.opts.Now()
	tasks, err := s.h.store.ClaimTasks(ctx, store.ClaimParams{
		Tenant:        caller.agent.Tenant,
		EnvironmentID: caller.env.ID,
		AgentID:       caller.agent.ID,
		Kinds:         req.Msg.GetKinds(),
		Max:           max,
		LeaseDuration: s.h.opts.LeaseDuration,
		Now:           now,
	})
	if err != nil {
		return nil, storeError("claim", err)
	}
	resp := &outpostv1.ClaimResponse{}
	for _, t := range tasks {
		runnable := t.CreatedAt
		if t.NotBefore.After(runnable) {
			runnable = t.NotBefore
		}
		s.h.metrics.dispatchLatency.Observe(now.Sub(runnable).Seconds())
		s.h.metrics.claimed.Inc()
		resp.Leases = append(resp.Leases, &outpostv1.Lease{
			Task:      s.h.taskToProto(ctx, t),
			Epoch:     t.Attempt,
			ExpiresAt: timestamppb.New(t.LeaseExpiresAt),
			Duration:  durationpb.New(s.h.opts.LeaseDuration),
		})
	}
	return connect.NewResponse(resp), nil
}

func (s *agentService) RenewLease(ctx context.Context, req *connect.Request[outpostv1.RenewLeaseRequest]) (*connect.Response[outpostv1.RenewLeaseResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	if err := checkTaskID(req.Msg.GetTaskId()); err != nil {
		return nil, err
	}
	t, err := s.h.store.RenewLease(ctx, store.RenewParams{
		Tenant:        caller.agent.Tenant,
		TaskID:        req.Msg.GetTaskId(),
		Epoch:         req.Msg.GetEpoch(),
		AgentID:       caller.agent.ID,
		LeaseDuration: s.h.opts.LeaseDuration,
		Now:           s.h.opts.Now(),
	})
	if err != nil {
		return nil, storeError("renew lease", err)
	}
	return connect.NewResponse(&outpostv1.RenewLeaseResponse{
		ExpiresAt:       timestamppb.New(t.LeaseExpiresAt),
		CancelRequested: t.CancelRequested,
	}), nil
}

var outcomes = map[outpostv1.Outcome]store.Outcome{
	outpostv1.Outcome_OUTCOME_SUCCEEDED: store.OutcomeSucceeded,
	outpostv1.Outcome_OUTCOME_FAILED:    store.OutcomeFailed,
	outpostv1.Outcome_OUTCOME_CANCELLED: store.OutcomeCancelled,
}

// maxErrorBytes caps the error text kept for an attempt.
const maxErrorBytes = 8 << 10

func (s *agentService) ReportResult(ctx context.Context, req *connect.Request[outpostv1.ReportResultRequest]) (*connect.Response[outpostv1.ReportResultResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkTaskID(m.GetTaskId()); err != nil {
		return nil, err
	}
	outcome, ok := outcomes[m.GetOutcome()]
	if !ok {
		return nil, invalid("report: outcome must be succeeded, failed or cancelled")
	}
	if err := checkJSONDocument("report: result", m.GetResult()); err != nil {
		return nil, err
	}
	errText := m.GetError()
	if len(errText) > maxErrorBytes {
		errText = errText[:maxErrorBytes] + "… (truncated)"
	}
	t, err := s.h.store.CompleteTask(ctx, store.CompleteParams{
		Tenant:    caller.agent.Tenant,
		TaskID:    m.GetTaskId(),
		Epoch:     m.GetEpoch(),
		AgentID:   caller.agent.ID,
		Outcome:   outcome,
		Result:    m.GetResult(),
		Error:     errText,
		Retryable: m.GetRetryable(),
		Backoff:   s.h.retryBackoff,
		Now:       s.h.opts.Now(),
	})
	if err != nil {
		return nil, storeError("report", err)
	}
	s.h.metrics.completed.WithLabelValues(string(outcome)).Inc()
	return connect.NewResponse(&outpostv1.ReportResultResponse{State: taskStates[t.State]}), nil
}

func (s *agentService) Heartbeat(ctx context.Context, req *connect.Request[outpostv1.HeartbeatRequest]) (*connect.Response[outpostv1.HeartbeatResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	if len(req.Msg.GetVersion()) > 64 {
		return nil, invalid("heartbeat: version too long")
	}
	now := s.h.opts.Now()
	if err := s.h.store.TouchAgent(ctx, caller.agent.ID, req.Msg.GetVersion(), now); err != nil {
		return nil, storeError("heartbeat", err)
	}
	return connect.NewResponse(&outpostv1.HeartbeatResponse{ServerTime: timestamppb.New(now)}), nil
}

func (s *agentService) DownloadArtifact(ctx context.Context, req *connect.Request[outpostv1.DownloadArtifactRequest], stream *connect.ServerStream[outpostv1.DownloadArtifactResponse]) error {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeArtifacts)
	if err != nil {
		return err
	}
	digest := req.Msg.GetDigest()
	if err := checkDigest(digest); err != nil {
		return err
	}
	if err := checkTaskID(req.Msg.GetTaskId()); err != nil {
		return err
	}
	// An agent reads only artifacts its own environment's tasks declare.
	t, err := s.h.store.GetTask(ctx, caller.agent.Tenant, req.Msg.GetTaskId())
	if err != nil || t.EnvironmentID != caller.env.ID || !slices.Contains(t.Artifacts, digest) {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("artifact %s is not declared by task %s of this environment", digest, req.Msg.GetTaskId()))
	}
	blob, err := s.h.store.OpenBlob(ctx, caller.agent.Tenant, digest)
	if err != nil {
		return storeError("download artifact", err)
	}
	defer blob.Close()
	buf := make([]byte, artifactChunk)
	first := true
	for {
		n, rerr := io.ReadFull(blob, buf)
		if n > 0 || first {
			msg := &outpostv1.DownloadArtifactResponse{Chunk: buf[:n]}
			if first {
				msg.Size = blob.Size()
				first = false
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return nil
		}
		if rerr != nil {
			return storeError("download artifact", rerr)
		}
	}
}
