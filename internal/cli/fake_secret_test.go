package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/seal"
)

// secretHub is the fake hub with the secret calls: it holds the
// environment's keyring as its agent would, so SetSecret can open what
// the CLI sent and prove it arrived sealed and intact. It records the raw
// bytes of every request, to check that no plaintext was on the wire.
type secretHub struct {
	*fakeHub

	keyring *seal.Keyring // acme/prod's, as its agent holds it

	smu     sync.Mutex
	keys    map[string][]*v1.EnvironmentKey // by environment name
	history map[string][]*v1.SecretInfo     // by env/namespace/name, newest first
	opened  []map[string][]byte             // values of each SetSecret, opened
	sets    []*v1.SetSecretRequest
	deletes []*v1.DeleteSecretRequest
	wire    [][]byte // every request body, as received
}

var _ outpostv1connect.OperatorServiceHandler = (*secretHub)(nil)

// newSecretHub returns a hub whose prod environment has key versions 1
// (retired) and 2, and one secret in namespace shop.
func newSecretHub(t *testing.T) *secretHub {
	t.Helper()
	k1, err := seal.GenerateKey("acme/prod", 1)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := seal.GenerateKey("acme/prod", 2)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	h := &secretHub{fakeHub: newFakeHub(), keyring: kr, keys: map[string][]*v1.EnvironmentKey{}, history: map[string][]*v1.SecretInfo{}}
	for _, k := range []*seal.KeyPair{k1, k2} {
		p := k.Public()
		h.keys["prod"] = append(h.keys["prod"], &v1.EnvironmentKey{Version: int32(p.Version), Recipient: p.Recipient, Fingerprint: p.Fingerprint,
			Retired: p.Version == 1, RegisteredAt: ts(-time.Duration(3-p.Version) * 24 * time.Hour), RegisteredBy: "agent:ag-1"})
	}
	h.history["prod/shop/db"] = []*v1.SecretInfo{
		{Environment: "prod", Namespace: "shop", Name: "db", Keys: []string{"password", "username"}, Version: 2, KeyVersion: 2,
			KeyFingerprint: k2.Public().Fingerprint, UpdatedBy: "ci-bot", UpdatedAt: ts(-time.Hour), TaskId: "sec-2", TaskState: v1.TaskState_TASK_STATE_SUCCEEDED},
		{Environment: "prod", Namespace: "shop", Name: "db", Keys: []string{"password"}, Version: 1, KeyVersion: 1,
			KeyFingerprint: k1.Public().Fingerprint, UpdatedBy: "admin", UpdatedAt: ts(-48 * time.Hour), TaskId: "sec-1", TaskState: v1.TaskState_TASK_STATE_SUCCEEDED},
	}
	return h
}

// newSecretHarness is newHarness serving a secretHub.
func newSecretHarness(t *testing.T) (*harness, *secretHub) {
	t.Helper()
	hub := newSecretHub(t)
	p, handler := outpostv1connect.NewOperatorServiceHandler(hub)
	mux := http.NewServeMux()
	mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hub.smu.Lock()
		hub.wire = append(hub.wire, body)
		hub.smu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler.ServeHTTP(w, r)
	}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "hub-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, hub: hub.fakeHub, url: srv.URL, caFile: caFile, dir: dir,
		configPath: filepath.Join(dir, "config", "outpost", "config.yaml"), env: map[string]string{}}
	return h, hub
}

func (h *secretHub) GetEnvironmentKeys(_ context.Context, req *connect.Request[v1.GetEnvironmentKeysRequest]) (*connect.Response[v1.GetEnvironmentKeysResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.smu.Lock()
	defer h.smu.Unlock()
	return connect.NewResponse(&v1.GetEnvironmentKeysResponse{Keys: h.keys[req.Msg.GetEnvironment()]}), nil
}

// SetSecret opens the sealed value with the agent's keyring, as the agent
// will, and records a new version and a succeeded task.
func (h *secretHub) SetSecret(_ context.Context, req *connect.Request[v1.SetSecretRequest]) (*connect.Response[v1.SetSecretResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	m := req.Msg
	var sealed seal.Sealed
	if err := json.Unmarshal(m.GetSealed(), &sealed); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("sealed: not a sealed value"))
	}
	values, err := seal.Open(h.keyring, &sealed, "acme/"+m.GetEnvironment(), m.GetName())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("sealed: %w", err))
	}
	h.smu.Lock()
	defer h.smu.Unlock()
	h.sets = append(h.sets, m)
	h.opened = append(h.opened, values)
	ref := m.GetEnvironment() + "/" + m.GetNamespace() + "/" + m.GetName()
	id := "sec-" + strconv.Itoa(len(h.sets)+10)
	info := &v1.SecretInfo{Environment: m.GetEnvironment(), Namespace: m.GetNamespace(), Name: m.GetName(), Keys: m.GetKeys(),
		Version: int64(len(h.history[ref]) + 1), KeyVersion: int32(sealed.KeyVersion), KeyFingerprint: sealed.Fingerprint,
		UpdatedBy: fakeTokenName, UpdatedAt: ts(0), TaskId: id, TaskState: v1.TaskState_TASK_STATE_QUEUED}
	h.history[ref] = append([]*v1.SecretInfo{info}, h.history[ref]...)
	task := h.addTask(id, m.GetEnvironment(), `{"secret":"`+m.GetName()+`","namespace":"`+m.GetNamespace()+
		`","outcome":"updated","key_version":2,"workloads":[{"kind":"Deployment","name":"web"}]}`)
	return connect.NewResponse(&v1.SetSecretResponse{Secret: info, Task: task}), nil
}

// addTask records a secret task that GetTask reports succeeded.
func (h *secretHub) addTask(id, env, result string) *v1.Task {
	t := &v1.Task{Id: id, Tenant: fakeTenant, Environment: env, Kind: "secret", State: v1.TaskState_TASK_STATE_SUCCEEDED,
		Result: []byte(result), Attempt: 1, MaxAttempts: 3, AgentId: "ag-1", CreatedAt: ts(0), UpdatedAt: ts(0), FinishedAt: ts(0)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tasks = append(h.tasks, t)
	return &v1.Task{Id: id, Tenant: fakeTenant, Environment: env, Kind: "secret", State: v1.TaskState_TASK_STATE_QUEUED}
}

func (h *secretHub) ListSecrets(_ context.Context, req *connect.Request[v1.ListSecretsRequest]) (*connect.Response[v1.ListSecretsResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.smu.Lock()
	defer h.smu.Unlock()
	var refs []string
	for ref := range h.history {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	res := &v1.ListSecretsResponse{}
	for _, ref := range refs {
		if s := h.history[ref][0]; s.GetEnvironment() == req.Msg.GetEnvironment() {
			res.Secrets = append(res.Secrets, s)
		}
	}
	return connect.NewResponse(res), nil
}

func (h *secretHub) GetSecretHistory(_ context.Context, req *connect.Request[v1.GetSecretHistoryRequest]) (*connect.Response[v1.GetSecretHistoryResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.smu.Lock()
	defer h.smu.Unlock()
	m := req.Msg
	vs := h.history[m.GetEnvironment()+"/"+m.GetNamespace()+"/"+m.GetName()]
	if len(vs) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("secret %s/%s not found in environment %s", m.GetNamespace(), m.GetName(), m.GetEnvironment()))
	}
	return connect.NewResponse(&v1.GetSecretHistoryResponse{Versions: vs}), nil
}

func (h *secretHub) DeleteSecret(_ context.Context, req *connect.Request[v1.DeleteSecretRequest]) (*connect.Response[v1.DeleteSecretResponse], error) {
	if err := authorize(req.Header()); err != nil {
		return nil, err
	}
	h.smu.Lock()
	defer h.smu.Unlock()
	m := req.Msg
	ref := m.GetEnvironment() + "/" + m.GetNamespace() + "/" + m.GetName()
	vs := h.history[ref]
	if len(vs) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("secret %s/%s not found", m.GetNamespace(), m.GetName()))
	}
	h.deletes = append(h.deletes, m)
	id := "sec-del-" + strconv.Itoa(len(h.deletes))
	info := &v1.SecretInfo{Environment: m.GetEnvironment(), Namespace: m.GetNamespace(), Name: m.GetName(), Version: vs[0].GetVersion() + 1,
		Deleted: true, UpdatedBy: fakeTokenName, UpdatedAt: ts(0), TaskId: id, TaskState: v1.TaskState_TASK_STATE_QUEUED}
	h.history[ref] = append([]*v1.SecretInfo{info}, vs...)
	task := h.addTask(id, m.GetEnvironment(), `{"secret":"`+m.GetName()+`","namespace":"`+m.GetNamespace()+`","outcome":"deleted"}`)
	return connect.NewResponse(&v1.DeleteSecretResponse{Secret: info, Task: task}), nil
}

// wireBytes returns every request body received so far, joined.
func (h *secretHub) wireBytes() []byte {
	h.smu.Lock()
	defer h.smu.Unlock()
	return bytes.Join(h.wire, nil)
}

// sentSets returns the SetSecret requests and what each opened to.
func (h *secretHub) sentSets() ([]*v1.SetSecretRequest, []map[string][]byte) {
	h.smu.Lock()
	defer h.smu.Unlock()
	return slices.Clone(h.sets), slices.Clone(h.opened)
}

// sentDeletes returns the DeleteSecret requests.
func (h *secretHub) sentDeletes() []*v1.DeleteSecretRequest {
	h.smu.Lock()
	defer h.smu.Unlock()
	return slices.Clone(h.deletes)
}
