package cli

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/audit"
)

// Fixed identity and clock of the fake hub.
const (
	fakeTenant    = "acme"
	fakeToken     = "op-secret-token"
	fakeTokenName = "ci-bot"
)

var fakeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeHub is a small in-memory OperatorService: enough behaviour to drive
// every CLI command, plus hooks for tests to script task progress and to
// tamper with the audit log.
type fakeHub struct {
	// The secret calls are not faked yet; they answer Unimplemented.
	outpostv1connect.UnimplementedOperatorServiceHandler

	mu        sync.Mutex
	envs      []*v1.Environment
	agents    []*v1.Agent
	tasks     []*v1.Task
	progress  map[string][]v1.TaskState // states GetTask reports, one per call
	events    []audit.Event
	artifacts map[string][]byte
	// chunks records the size of every artifact chunk received.
	chunks  []int
	headers []*v1.ArtifactHeader
	// tokenTTLs records the ttl of each CreateBootstrapToken call.
	tokenTTLs []time.Duration
	// Releases, by environment/name, and what the release calls saw;
	// see fake_release_test.go.
	releases        map[string]*fakeRelease
	applied         []*v1.ApplyReleaseRequest
	releaseProgress map[string][]v1.ReleaseSync
	deleted         []string
	approvals       []*v1.ApproveReleaseRequest
	// replanBeforeApproval makes ApproveRelease find a new plan stored
	// since the CLI read it, as when the agent planned again meanwhile.
	replanBeforeApproval bool
	keys                 map[string][]*v1.EnvironmentKey
	secrets              map[string][]*v1.SecretInfo
}

var _ outpostv1connect.OperatorServiceHandler = (*fakeHub)(nil)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(fakeNow.Add(d)) }

func newFakeHub() *fakeHub {
	h := &fakeHub{
		progress:  map[string][]v1.TaskState{},
		artifacts: map[string][]byte{},
		envs: []*v1.Environment{
			{Tenant: fakeTenant, Name: "prod", CreatedAt: ts(-30 * 24 * time.Hour), Agents: 2},
			{Tenant: fakeTenant, Name: "staging", CreatedAt: ts(-2*time.Hour - 15*time.Minute)},
		},
		agents: []*v1.Agent{
			{Id: "ag-1", Tenant: fakeTenant, Environment: "prod", Hostname: "node-a", Version: "v1.2.0", EnrolledAt: ts(-72 * time.Hour),
				LastSeenAt: ts(-10 * time.Second), Connected: true, KeyFingerprint: strings.Repeat("ab", 32)},
			{Id: "ag-2", Tenant: fakeTenant, Environment: "prod", Hostname: "node-b", Version: "v1.1.0", EnrolledAt: ts(-40 * 24 * time.Hour),
				LastSeenAt: ts(-5 * 24 * time.Hour), Disabled: true, KeyFingerprint: strings.Repeat("cd", 32)},
		},
		tasks: []*v1.Task{
			{Id: "t-1", Tenant: fakeTenant, Environment: "prod", Kind: "http", State: v1.TaskState_TASK_STATE_SUCCEEDED,
				Spec: []byte(`{"url":"https://internal.example/deploy","method":"POST"}`), Result: []byte(`{"status":200}`),
				Attempt: 1, MaxAttempts: 3, AgentId: "ag-1", ConflictKeys: []string{"http/deploy"},
				CreatedAt: ts(-3 * time.Hour), UpdatedAt: ts(-3*time.Hour + time.Minute), FinishedAt: ts(-3*time.Hour + time.Minute)},
			{Id: "t-2", Tenant: fakeTenant, Environment: "prod", Kind: "manifests", State: v1.TaskState_TASK_STATE_FAILED,
				Spec: []byte(`{"objects":[]}`), Attempt: 3, MaxAttempts: 3, AgentId: "ag-1", Error: "apply: forbidden",
				CreatedAt: ts(-2 * time.Hour), UpdatedAt: ts(-time.Hour), FinishedAt: ts(-time.Hour)},
			{Id: "t-3", Tenant: fakeTenant, Environment: "staging", Kind: "helm", State: v1.TaskState_TASK_STATE_QUEUED,
				Spec: []byte(`{"chart":"web"}`), MaxAttempts: 3, CreatedAt: ts(-time.Minute), UpdatedAt: ts(-time.Minute)},
		},
	}
	h.seedReleases()
	actions := []struct{ actor, action, env, subject string }{
		{"admin", audit.ActionEnvironmentCreated, "prod", "prod"},
		{"ci-bot", audit.ActionBootstrapTokenCreated, "prod", "bt-1"},
		{"agent:ag-1", audit.ActionAgentRegistered, "prod", "ag-1"},
		{"ci-bot", audit.ActionTaskEnqueued, "prod", "t-1"},
		{"agent:ag-1", audit.ActionTaskCompleted, "prod", "t-1"},
	}
	for i, a := range actions {
		h.appendEvent(fakeNow.Add(time.Duration(i-len(actions))*time.Hour), a.actor, a.action, a.env, a.subject)
	}
	return h
}

func (h *fakeHub) appendEvent(at time.Time, actor, action, env, subject string) {
	var prev audit.Event
	if n := len(h.events); n > 0 {
		prev = h.events[n-1]
	}
	e := audit.Event{Time: at, Tenant: fakeTenant, Environment: env, Actor: actor, Action: action, Subject: subject,
		Details: audit.NewDetails(map[string]any{"n": len(h.events) + 1})}
	e.Seal(prev)
	h.events = append(h.events, e)
}

// tamperAudit lets a test change the stored chain, as an attacker with
// database access would.
func (h *fakeHub) tamperAudit(f func([]audit.Event) []audit.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = f(h.events)
}

// scriptTask makes GetTask report these states for id, one per call; the
// last one stays.
func (h *fakeHub) scriptTask(id string, states ...v1.TaskState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress[id] = states
}

// snapshot returns a copy of task id and the number of tasks, for assertions.
func (h *fakeHub) snapshot(id string) (*v1.Task, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, _ := h.task(id)
	return proto.CloneOf(t), len(h.tasks)
}

func authorize(header interface{ Get(string) string }) error {
	if header.Get("Authorization") != "Bearer "+fakeToken {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("invalid API token"))
	}
	return nil
}

func (h *fakeHub) task(id string) (*v1.Task, error) {
	for _, t := range h.tasks {
		if t.GetId() == id {
			return t, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("task %q not found", id))
}

func (h *fakeHub) WhoAmI(_ context.Context, req *connect.Request[v1.WhoAmIRequest]) (*connect.Response[v1.WhoAmIResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.WhoAmIResponse{Tenant: fakeTenant, TokenName: fakeTokenName, TokenId: "tok_1"}), nil
}

func (h *fakeHub) CreateEnvironment(_ context.Context, req *connect.Request[v1.CreateEnvironmentRequest]) (*connect.Response[v1.CreateEnvironmentResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.envs {
		if e.GetName() == req.Msg.GetName() {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("environment %q already exists", e.GetName()))
		}
	}
	env := &v1.Environment{Tenant: fakeTenant, Name: req.Msg.GetName(), CreatedAt: timestamppb.New(fakeNow)}
	h.envs = append(h.envs, env)
	return connect.NewResponse(&v1.CreateEnvironmentResponse{Environment: env}), nil
}

func (h *fakeHub) ListEnvironments(_ context.Context, req *connect.Request[v1.ListEnvironmentsRequest]) (*connect.Response[v1.ListEnvironmentsResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return connect.NewResponse(&v1.ListEnvironmentsResponse{Environments: h.envs}), nil
}

func (h *fakeHub) CreateBootstrapToken(_ context.Context, req *connect.Request[v1.CreateBootstrapTokenRequest]) (*connect.Response[v1.CreateBootstrapTokenResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ttl := 2 * time.Hour
	if req.Msg.GetTtl() != nil {
		ttl = req.Msg.GetTtl().AsDuration()
	}
	h.tokenTTLs = append(h.tokenTTLs, ttl)
	return connect.NewResponse(&v1.CreateBootstrapTokenResponse{
		Token: "obt_0123456789abcdef", ExpiresAt: timestamppb.New(fakeNow.Add(ttl)), Environment: fakeTenant + "/" + req.Msg.GetEnvironment(),
	}), nil
}

func (h *fakeHub) ListAgents(_ context.Context, req *connect.Request[v1.ListAgentsRequest]) (*connect.Response[v1.ListAgentsResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*v1.Agent
	for _, a := range h.agents {
		if env := req.Msg.GetEnvironment(); env == "" || a.GetEnvironment() == env {
			out = append(out, a)
		}
	}
	return connect.NewResponse(&v1.ListAgentsResponse{Agents: out}), nil
}

func (h *fakeHub) DisableAgent(_ context.Context, req *connect.Request[v1.DisableAgentRequest]) (*connect.Response[v1.DisableAgentResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.agents {
		if a.GetId() == req.Msg.GetAgentId() {
			a.Disabled, a.Connected = true, false
			return connect.NewResponse(&v1.DisableAgentResponse{Agent: a}), nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("agent %q not found", req.Msg.GetAgentId()))
}

func (h *fakeHub) EnqueueTask(_ context.Context, req *connect.Request[v1.EnqueueTaskRequest]) (*connect.Response[v1.EnqueueTaskResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := req.Msg
	if t, err := h.task(m.GetId()); err == nil {
		return connect.NewResponse(&v1.EnqueueTaskResponse{Task: t}), nil
	}
	for _, d := range m.GetArtifacts() {
		if _, ok := h.artifacts[d]; !ok {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("artifact %s was not uploaded", d))
		}
	}
	t := &v1.Task{
		Id: m.GetId(), Tenant: fakeTenant, Environment: m.GetEnvironment(), Kind: m.GetKind(), Spec: m.GetSpec(),
		ConflictKeys: m.GetConflictKeys(), Artifacts: m.GetArtifacts(), MaxAttempts: cmp.Or(m.GetMaxAttempts(), 3),
		State: v1.TaskState_TASK_STATE_QUEUED, CreatedAt: timestamppb.New(fakeNow), UpdatedAt: timestamppb.New(fakeNow),
	}
	if m.GetTimeout() != nil {
		t.Deadline = timestamppb.New(fakeNow.Add(m.GetTimeout().AsDuration()))
	}
	h.tasks = append(h.tasks, t)
	return connect.NewResponse(&v1.EnqueueTaskResponse{Task: t, Created: true}), nil
}

func (h *fakeHub) GetTask(_ context.Context, req *connect.Request[v1.GetTaskRequest]) (*connect.Response[v1.GetTaskResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.task(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	if states := h.progress[t.GetId()]; len(states) > 0 {
		t.State = states[0]
		if len(states) > 1 {
			h.progress[t.GetId()] = states[1:]
		}
		if t.State != v1.TaskState_TASK_STATE_QUEUED {
			t.Attempt, t.AgentId = 1, "ag-1"
		}
		if t.State == v1.TaskState_TASK_STATE_FAILED {
			t.Error = "exit status 1"
		}
		if isTerminal(t.State) {
			t.FinishedAt = timestamppb.New(fakeNow)
		}
	}
	return connect.NewResponse(&v1.GetTaskResponse{Task: proto.CloneOf(t)}), nil
}

func (h *fakeHub) ListTasks(_ context.Context, req *connect.Request[v1.ListTasksRequest]) (*connect.Response[v1.ListTasksResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := req.Msg
	var match []*v1.Task
	for _, t := range h.tasks {
		if (m.GetEnvironment() == "" || t.GetEnvironment() == m.GetEnvironment()) &&
			(m.GetState() == v1.TaskState_TASK_STATE_UNSPECIFIED || t.GetState() == m.GetState()) {
			match = append(match, t)
		}
	}
	slices.SortFunc(match, func(a, b *v1.Task) int { return b.GetCreatedAt().AsTime().Compare(a.GetCreatedAt().AsTime()) })
	start, _ := strconv.Atoi(m.GetPageToken())
	limit := int(cmp.Or(m.GetLimit(), 100))
	end := min(start+limit, len(match))
	res := &v1.ListTasksResponse{Tasks: match[min(start, end):end]}
	if end < len(match) {
		res.NextPageToken = strconv.Itoa(end)
	}
	return connect.NewResponse(res), nil
}

func (h *fakeHub) CancelTask(_ context.Context, req *connect.Request[v1.CancelTaskRequest]) (*connect.Response[v1.CancelTaskResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.task(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	switch t.GetState() {
	case v1.TaskState_TASK_STATE_QUEUED:
		t.State, t.FinishedAt = v1.TaskState_TASK_STATE_CANCELLED, timestamppb.New(fakeNow)
	case v1.TaskState_TASK_STATE_LEASED:
		t.CancelRequested = true
	}
	t.UpdatedAt = timestamppb.New(fakeNow)
	return connect.NewResponse(&v1.CancelTaskResponse{Task: t}), nil
}

func eventToProto(e audit.Event) *v1.AuditEvent {
	return &v1.AuditEvent{Seq: e.Seq, Time: timestamppb.New(e.Time), Tenant: e.Tenant, Environment: e.Environment,
		Actor: e.Actor, Action: e.Action, Subject: e.Subject, Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash}
}

func (h *fakeHub) ListAuditEvents(_ context.Context, req *connect.Request[v1.ListAuditEventsRequest]) (*connect.Response[v1.ListAuditEventsResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	res := &v1.ListAuditEventsResponse{}
	for _, e := range h.events {
		if e.Seq <= req.Msg.GetAfterSeq() || (req.Msg.GetAction() != "" && e.Action != req.Msg.GetAction()) {
			continue
		}
		if l := req.Msg.GetLimit(); l > 0 && len(res.Events) == int(l) {
			break
		}
		res.Events = append(res.Events, eventToProto(e))
	}
	return connect.NewResponse(res), nil
}

func (h *fakeHub) ExportAuditEvents(_ context.Context, req *connect.Request[v1.ExportAuditEventsRequest], stream *connect.ServerStream[v1.ExportAuditEventsResponse]) error {
	if err := authorize(req.Header()); err != nil {
		return err
	}
	h.mu.Lock()
	events := slices.Clone(h.events)
	h.mu.Unlock()
	// Two events per message, so the CLI must handle batches.
	batch := &v1.ExportAuditEventsResponse{}
	for _, e := range events {
		if e.Seq <= req.Msg.GetAfterSeq() {
			continue
		}
		batch.Events = append(batch.Events, eventToProto(e))
		if len(batch.Events) == 2 {
			if err := stream.Send(batch); err != nil {
				return err
			}
			batch = &v1.ExportAuditEventsResponse{}
		}
	}
	if len(batch.Events) > 0 {
		return stream.Send(batch)
	}
	return nil
}

func (h *fakeHub) UploadArtifact(_ context.Context, stream *connect.ClientStream[v1.UploadArtifactRequest]) (*connect.Response[v1.UploadArtifactResponse], error) {
	if err := authorize(stream.RequestHeader()); err != nil {
		return nil, err
	}
	if !stream.Receive() {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("empty upload"))
	}
	header := stream.Msg().GetHeader()
	if header == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upload must start with a header"))
	}
	var content []byte
	var sizes []int
	for stream.Receive() {
		chunk := stream.Msg().GetChunk()
		sizes = append(sizes, len(chunk))
		content = append(content, chunk...)
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(content)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if digest != header.GetDigest() || int64(len(content)) != header.GetSize() {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("content is %s (%d bytes), header said %s (%d bytes)",
			digest, len(content), header.GetDigest(), header.GetSize()))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.artifacts[digest] = content
	h.chunks = append(h.chunks, sizes...)
	h.headers = append(h.headers, header)
	return connect.NewResponse(&v1.UploadArtifactResponse{Digest: digest, Size: int64(len(content))}), nil
}
