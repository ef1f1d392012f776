package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/taskspec"
)

// operatorService implements the operator API. Every call is scoped to the
// tenant of the caller's API token.
type operatorService struct {
	h *Hub
}

var _ outpostv1connect.OperatorServiceHandler = (*operatorService)(nil)

func (s *operatorService) WhoAmI(ctx context.Context, req *connect.Request[outpostv1.WhoAmIRequest]) (*connect.Response[outpostv1.WhoAmIResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&outpostv1.WhoAmIResponse{Tenant: c.token.Tenant, TokenName: c.token.Name, TokenId: c.token.ID}), nil
}

func (s *operatorService) envByName(ctx context.Context, c operatorCaller, name string) (store.Environment, error) {
	if err := CheckName("environment", name); err != nil {
		return store.Environment{}, err
	}
	env, err := s.h.store.GetEnvironmentByName(ctx, c.token.Tenant, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Environment{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("environment %q not found in tenant %s; create it with `outpost env create %s`", name, c.token.Tenant, name))
	}
	if err != nil {
		return store.Environment{}, storeError("environment", err)
	}
	return env, nil
}

// envIDIfNamed returns the ID of the environment a listing is limited to,
// "" when it names none (every environment of the tenant).
func (s *operatorService) envIDIfNamed(ctx context.Context, c operatorCaller, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	env, err := s.envByName(ctx, c, name)
	return env.ID, err
}

func (s *operatorService) CreateEnvironment(ctx context.Context, req *connect.Request[outpostv1.CreateEnvironmentRequest]) (*connect.Response[outpostv1.CreateEnvironmentResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if err := CheckName("environment", req.Msg.GetName()); err != nil {
		return nil, err
	}
	env := store.Environment{ID: auth.NewID("env_"), Tenant: c.token.Tenant, Name: req.Msg.GetName(), CreatedAt: s.h.opts.Now()}
	if err := s.h.store.CreateEnvironment(ctx, env, c.actor()); err != nil {
		return nil, storeError(fmt.Sprintf("create environment %q", env.Name), err)
	}
	return connect.NewResponse(&outpostv1.CreateEnvironmentResponse{Environment: &outpostv1.Environment{
		Tenant: env.Tenant, Name: env.Name, CreatedAt: ts(env.CreatedAt),
	}}), nil
}

func (s *operatorService) ListEnvironments(ctx context.Context, req *connect.Request[outpostv1.ListEnvironmentsRequest]) (*connect.Response[outpostv1.ListEnvironmentsResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	envs, err := s.h.store.ListEnvironments(ctx, c.token.Tenant)
	if err != nil {
		return nil, storeError("list environments", err)
	}
	agents, err := s.h.store.ListAgents(ctx, c.token.Tenant, "")
	if err != nil {
		return nil, storeError("list environments", err)
	}
	count := map[string]int32{}
	for _, a := range agents {
		if !a.Disabled {
			count[a.EnvironmentID]++
		}
	}
	resp := &outpostv1.ListEnvironmentsResponse{}
	for _, e := range envs {
		resp.Environments = append(resp.Environments, &outpostv1.Environment{
			Tenant: e.Tenant, Name: e.Name, CreatedAt: ts(e.CreatedAt), Agents: count[e.ID],
		})
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) CreateBootstrapToken(ctx context.Context, req *connect.Request[outpostv1.CreateBootstrapTokenRequest]) (*connect.Response[outpostv1.CreateBootstrapTokenResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, err := s.envByName(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	ttl := DefaultBootstrapTokenTTL
	if d := req.Msg.GetTtl(); d != nil {
		ttl = d.AsDuration()
	}
	if ttl <= 0 || ttl > MaxBootstrapTokenTTL {
		return nil, invalid("bootstrap token ttl %v must be between 1s and %v", ttl, MaxBootstrapTokenTTL)
	}
	tok, err := auth.NewToken(auth.PrefixBootstrapToken)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	now := s.h.opts.Now()
	row := store.BootstrapToken{
		ID: auth.NewID("btk_"), Hash: auth.HashToken(tok), EnvironmentID: env.ID,
		CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: c.actor(),
	}
	if err := s.h.store.CreateBootstrapToken(ctx, row, c.actor()); err != nil {
		return nil, storeError("create bootstrap token", err)
	}
	return connect.NewResponse(&outpostv1.CreateBootstrapTokenResponse{
		Token: tok, ExpiresAt: timestamppb.New(row.ExpiresAt), Environment: env.Ref(),
	}), nil
}

func (s *operatorService) ListAgents(ctx context.Context, req *connect.Request[outpostv1.ListAgentsRequest]) (*connect.Response[outpostv1.ListAgentsResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	envID, err := s.envIDIfNamed(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	agents, err := s.h.store.ListAgents(ctx, c.token.Tenant, envID)
	if err != nil {
		return nil, storeError("list agents", err)
	}
	resp := &outpostv1.ListAgentsResponse{}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, s.h.agentToProto(ctx, a))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) DisableAgent(ctx context.Context, req *connect.Request[outpostv1.DisableAgentRequest]) (*connect.Response[outpostv1.DisableAgentResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if id := req.Msg.GetAgentId(); id == "" || len(id) > 64 {
		return nil, invalid("agent id is required")
	}
	a, err := s.h.store.DisableAgent(ctx, c.token.Tenant, req.Msg.GetAgentId(), c.actor(), s.h.opts.Now())
	if err != nil {
		return nil, storeError(fmt.Sprintf("disable agent %s", req.Msg.GetAgentId()), err)
	}
	s.h.opts.Logger.Info("agent disabled", "agent", a.ID, "actor", c.actor())
	return connect.NewResponse(&outpostv1.DisableAgentResponse{Agent: s.h.agentToProto(ctx, a)}), nil
}

func (s *operatorService) EnqueueTask(ctx context.Context, req *connect.Request[outpostv1.EnqueueTaskRequest]) (*connect.Response[outpostv1.EnqueueTaskResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	env, err := s.envByName(ctx, c, m.GetEnvironment())
	if err != nil {
		return nil, err
	}
	id := m.GetId()
	if id == "" {
		id = auth.NewID("task-")
	}
	if err := checkTaskID(id); err != nil {
		return nil, err
	}
	if err := taskspec.Validate(m.GetKind(), m.GetSpec()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("task %s: %w", id, err))
	}
	if err := checkConflictKeys(m.GetConflictKeys()); err != nil {
		return nil, err
	}
	if err := s.checkArtifacts(ctx, c, m.GetArtifacts()); err != nil {
		return nil, err
	}
	maxAttempts := int(m.GetMaxAttempts())
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if maxAttempts < 1 || maxAttempts > MaxMaxAttempts {
		return nil, invalid("max_attempts %d must be between 1 and %d", maxAttempts, MaxMaxAttempts)
	}
	now := s.h.opts.Now()
	var deadline time.Time
	if d := m.GetTimeout(); d != nil {
		if d.AsDuration() <= 0 || d.AsDuration() > 30*24*time.Hour {
			return nil, invalid("timeout %v must be positive and at most 30 days", d.AsDuration())
		}
		deadline = now.Add(d.AsDuration())
	}
	t, created, err := s.h.store.EnqueueTask(ctx, store.Task{
		ID:            id,
		Tenant:        c.token.Tenant,
		EnvironmentID: env.ID,
		Kind:          m.GetKind(),
		Spec:          m.GetSpec(),
		ConflictKeys:  m.GetConflictKeys(),
		Artifacts:     m.GetArtifacts(),
		MaxAttempts:   maxAttempts,
		Deadline:      deadline,
		State:         store.StateQueued,
		CreatedAt:     now,
		UpdatedAt:     now,
	}, c.actor())
	if err != nil {
		return nil, storeError(fmt.Sprintf("enqueue task %s", id), err)
	}
	if created {
		s.h.metrics.enqueued.Inc()
	}
	return connect.NewResponse(&outpostv1.EnqueueTaskResponse{Task: s.h.taskToProto(ctx, t), Created: created}), nil
}

// checkArtifacts validates a task's artifact digests and that each was
// uploaded.
func (s *operatorService) checkArtifacts(ctx context.Context, c operatorCaller, digests []string) error {
	if len(digests) > maxArtifacts {
		return invalid("at most %d artifacts per task", maxArtifacts)
	}
	for _, d := range digests {
		if err := checkDigest(d); err != nil {
			return err
		}
		ok, err := s.h.store.BlobExists(ctx, c.token.Tenant, d)
		if err != nil {
			return storeError("check artifact", err)
		}
		if !ok {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("artifact %s was not uploaded; upload it first", d))
		}
	}
	return nil
}

func (s *operatorService) GetTask(ctx context.Context, req *connect.Request[outpostv1.GetTaskRequest]) (*connect.Response[outpostv1.GetTaskResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if err := checkTaskID(req.Msg.GetId()); err != nil {
		return nil, err
	}
	t, err := s.h.store.GetTask(ctx, c.token.Tenant, req.Msg.GetId())
	if err != nil {
		return nil, storeError(fmt.Sprintf("task %s", req.Msg.GetId()), err)
	}
	return connect.NewResponse(&outpostv1.GetTaskResponse{Task: s.h.taskToProto(ctx, t)}), nil
}

func (s *operatorService) ListTasks(ctx context.Context, req *connect.Request[outpostv1.ListTasksRequest]) (*connect.Response[outpostv1.ListTasksResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	f := store.TaskFilter{Tenant: c.token.Tenant, Limit: int(req.Msg.GetLimit()), BeforeCursor: req.Msg.GetPageToken()}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	if len(f.BeforeCursor) > 256 {
		return nil, invalid("page token too long")
	}
	if f.EnvironmentID, err = s.envIDIfNamed(ctx, c, req.Msg.GetEnvironment()); err != nil {
		return nil, err
	}
	if st := req.Msg.GetState(); st != outpostv1.TaskState_TASK_STATE_UNSPECIFIED {
		f.State = stateFromProto(st)
		if f.State == "" {
			return nil, invalid("unknown task state %v", st)
		}
	}
	tasks, next, err := s.h.store.ListTasks(ctx, f)
	if err != nil {
		return nil, storeError("list tasks", err)
	}
	resp := &outpostv1.ListTasksResponse{NextPageToken: next}
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, s.h.taskToProto(ctx, t))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) CancelTask(ctx context.Context, req *connect.Request[outpostv1.CancelTaskRequest]) (*connect.Response[outpostv1.CancelTaskResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if err := checkTaskID(req.Msg.GetId()); err != nil {
		return nil, err
	}
	t, err := s.h.store.CancelTask(ctx, c.token.Tenant, req.Msg.GetId(), c.actor(), s.h.opts.Now())
	if err != nil {
		return nil, storeError(fmt.Sprintf("cancel task %s", req.Msg.GetId()), err)
	}
	return connect.NewResponse(&outpostv1.CancelTaskResponse{Task: s.h.taskToProto(ctx, t)}), nil
}

func (s *operatorService) ListAuditEvents(ctx context.Context, req *connect.Request[outpostv1.ListAuditEventsRequest]) (*connect.Response[outpostv1.ListAuditEventsResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	limit := int(req.Msg.GetLimit())
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if len(req.Msg.GetAction()) > 64 {
		return nil, invalid("action filter too long")
	}
	events, err := s.h.store.ListAudit(ctx, c.token.Tenant, req.Msg.GetAfterSeq(), limit, req.Msg.GetAction())
	if err != nil {
		return nil, storeError("list audit events", err)
	}
	resp := &outpostv1.ListAuditEventsResponse{}
	for _, e := range events {
		resp.Events = append(resp.Events, auditToProto(e))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) ExportAuditEvents(ctx context.Context, req *connect.Request[outpostv1.ExportAuditEventsRequest], stream *connect.ServerStream[outpostv1.ExportAuditEventsResponse]) error {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return err
	}
	after := req.Msg.GetAfterSeq()
	for {
		events, err := s.h.store.ListAudit(ctx, c.token.Tenant, after, exportBatch, "")
		if err != nil {
			return storeError("export audit events", err)
		}
		if len(events) == 0 {
			return nil
		}
		msg := &outpostv1.ExportAuditEventsResponse{}
		for _, e := range events {
			msg.Events = append(msg.Events, auditToProto(e))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		after = events[len(events)-1].Seq
	}
}

func (s *operatorService) UploadArtifact(ctx context.Context, stream *connect.ClientStream[outpostv1.UploadArtifactRequest]) (*connect.Response[outpostv1.UploadArtifactResponse], error) {
	c, err := s.h.authOperator(ctx, stream.RequestHeader())
	if err != nil {
		return nil, err
	}
	if !stream.Receive() {
		if err := stream.Err(); err != nil {
			return nil, err
		}
		return nil, invalid("upload: empty stream; send a header first")
	}
	hdr := stream.Msg().GetHeader()
	if hdr == nil {
		return nil, invalid("upload: the first message must be the header")
	}
	if hdr.GetDigest() != "" {
		if err := checkDigest(hdr.GetDigest()); err != nil {
			return nil, err
		}
	}
	if hdr.GetSize() > s.h.opts.MaxArtifactBytes {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("upload: artifact of %d bytes exceeds the %d-byte limit", hdr.GetSize(), s.h.opts.MaxArtifactBytes))
	}
	chunks := &chunkReader{stream: stream}
	digest, size, err := s.h.store.PutBlob(ctx, c.token.Tenant, hdr.GetDigest(), chunks, s.h.opts.MaxArtifactBytes)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, storeError("upload artifact", err)
	}
	// A blob the tenant already has is answered without reading its
	// chunks. They are read out (bounded) before answering: a response
	// sent while the client still sends ends the request stream under it,
	// and the client then sees a reset instead of the answer.
	if _, err := io.Copy(io.Discard, io.LimitReader(chunks, s.h.opts.MaxArtifactBytes+1)); err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, connect.NewError(connect.CodeUnknown, fmt.Errorf("upload: %w", err))
	}
	if hdr.GetSize() > 0 && size != hdr.GetSize() {
		return nil, invalid("upload: received %d bytes, header announced %d", size, hdr.GetSize())
	}
	return connect.NewResponse(&outpostv1.UploadArtifactResponse{Digest: digest, Size: size}), nil
}

// chunkReader reads the chunk messages of an upload as one byte stream.
type chunkReader struct {
	stream *connect.ClientStream[outpostv1.UploadArtifactRequest]
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if !r.stream.Receive() {
			if err := r.stream.Err(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		if r.stream.Msg().GetHeader() != nil {
			return 0, invalid("upload: header sent twice")
		}
		r.buf = r.stream.Msg().GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
