package outpostproc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/outposthq/outpost/bench/internal/procstat"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/transport"
)

// Tenant is the tenant of every environment and task of a benchmark.
const Tenant = "bench"

// readyTimeout bounds the hub's start and an agent's enrollment.
const readyTimeout = 60 * time.Second

// HubOptions says how to run a hub.
type HubOptions struct {
	// Bin is outpost-hub, or a program that acts as it. Required.
	Bin string
	// Dir holds the hub's log and TLS files, and its SQLite file when DB
	// is empty. Required.
	Dir string
	// DB is the store: a SQLite file or a postgres:// URL; empty means
	// a fresh SQLite file in Dir.
	DB string
	// Env is added to the hub's environment.
	Env []string
	// CPUProfile, when set, is passed as EnvCPUProfile: a hub that serves
	// profile signals writes its CPU profile there (Child.StartProfile).
	CPUProfile string
}

// Hub is an outpost-hub process serving TLS on a free loopback port, and
// an operator client of the tenant Tenant for it.
type Hub struct {
	*Child
	// URL is https://127.0.0.1:<port>.
	URL string
	// CAFile is the CA of the hub's development certificate.
	CAFile string
	// Token is the operator token of Tenant.
	Token string
	// HTTP is a client that trusts CAFile.
	HTTP *http.Client
	// Operator calls the operator API with Token.
	Operator outpostv1connect.OperatorServiceClient
}

// StartHub creates the tenant Tenant and its operator token in the store,
// then serves it until /readyz answers.
func StartHub(ctx context.Context, o HubOptions) (*Hub, error) {
	if o.Bin == "" || o.Dir == "" {
		return nil, errors.New("outpostproc: HubOptions: Bin and Dir are required")
	}
	if o.DB == "" {
		o.DB = filepath.Join(o.Dir, "hub.db")
	}
	env := o.Env
	if o.CPUProfile != "" {
		env = append(env[:len(env):len(env)], EnvCPUProfile+"="+o.CPUProfile)
	}
	token, err := adminToken(ctx, o.Bin, o.DB, env)
	if err != nil {
		return nil, err
	}
	addr, err := procstat.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(o.Dir, "tls")
	c, err := Start(o.Bin, filepath.Join(o.Dir, "hub.log"), env,
		"--db", o.DB, "--log-level", "warn", "serve", "--listen", addr, "--dev-tls-dir", tlsDir)
	if err != nil {
		return nil, err
	}
	c.Name, c.Profile = "outpost-hub", o.CPUProfile
	h := &Hub{Child: c, URL: "https://" + addr, CAFile: filepath.Join(tlsDir, devcert.CAFile), Token: token}
	if err := h.waitReady(ctx); err != nil {
		_ = h.Stop()
		return nil, err
	}
	h.Operator = outpostv1connect.NewOperatorServiceClient(h.HTTP, h.URL, connect.WithInterceptors(hubtest.WithToken(token)))
	return h, nil
}

// adminToken creates the tenant Tenant and an operator token in db.
func adminToken(ctx context.Context, bin, db string, env []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--db", db, "--log-level", "warn", "admin", "token", "--tenant", Tenant, "--name", "bench") //nolint:gosec // our own build
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("outpost-hub admin token: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" {
		return "", errors.New("outpost-hub admin token printed no token")
	}
	return tok, nil
}

func (h *Hub) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if err := h.Alive(); err != nil {
			return err
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
		if h.HTTP == nil {
			// The CA appears once the hub has made its certificate.
			if _, err := os.Stat(h.CAFile); err != nil {
				continue
			}
			c, err := transport.NewClient(transport.Options{CAFile: h.CAFile})
			if err != nil {
				continue
			}
			h.HTTP = c
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/readyz", nil)
		resp, err := h.HTTP.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("outpost-hub did not become ready within %v: %s", readyTimeout, procstat.Tail(h.LogPath, 15))
}

// Stop closes the operator client's connections and stops the hub.
func (h *Hub) Stop() error {
	if h.HTTP != nil {
		h.HTTP.CloseIdleConnections()
	}
	return h.Child.Stop()
}

// Upload stores data as an artifact in chunks and returns its digest.
func (h *Hub) Upload(ctx context.Context, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	stream := h.Operator.UploadArtifact(ctx)
	send := func(req *outpostv1.UploadArtifactRequest) error {
		err := stream.Send(req)
		if errors.Is(err, io.EOF) {
			_, err = stream.CloseAndReceive() // the hub's reason
		}
		return err
	}
	if err := send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Header{
		Header: &outpostv1.ArtifactHeader{Digest: digest, Size: int64(len(data))},
	}}); err != nil {
		return "", fmt.Errorf("upload artifact: %w", err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		chunk := data[off:min(off+1<<20, len(data))]
		if err := send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Chunk{Chunk: chunk}}); err != nil {
			return "", fmt.Errorf("upload artifact: %w", err)
		}
	}
	resp, err := stream.CloseAndReceive()
	if err != nil {
		return "", fmt.Errorf("upload artifact: %w", err)
	}
	if resp.Msg.GetDigest() != digest {
		return "", fmt.Errorf("upload artifact: the hub stored %s, want %s", resp.Msg.GetDigest(), digest)
	}
	return digest, nil
}

// WaitTask polls the task until it ends, failing early when agent (if
// not nil) exits.
func (h *Hub) WaitTask(ctx context.Context, agent *Child, id string, timeout time.Duration) (*outpostv1.Task, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if agent != nil {
			if err := agent.Alive(); err != nil {
				return nil, err
			}
		}
		resp, err := h.Operator.GetTask(ctx, connect.NewRequest(&outpostv1.GetTaskRequest{Id: id}))
		if err == nil && Ended(resp.Msg.GetTask().GetState()) {
			return resp.Msg.GetTask(), nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	msg := fmt.Sprintf("task %s did not end within %v", id, timeout)
	if agent != nil {
		msg += ": " + procstat.Tail(agent.LogPath, 15)
	}
	return nil, errors.New(msg)
}

// Tasks returns the tasks of environment named in ids, all of them or an
// error.
func (h *Hub) Tasks(ctx context.Context, environment string, ids map[string]bool) ([]*outpostv1.Task, error) {
	var out []*outpostv1.Task
	page := ""
	for {
		resp, err := h.Operator.ListTasks(ctx, connect.NewRequest(&outpostv1.ListTasksRequest{Environment: environment, Limit: 500, PageToken: page}))
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		for _, t := range resp.Msg.GetTasks() {
			if ids[t.GetId()] {
				out = append(out, t)
			}
		}
		if page = resp.Msg.GetNextPageToken(); page == "" {
			break
		}
	}
	if len(out) != len(ids) {
		return nil, fmt.Errorf("list tasks: found %d of %d tasks", len(out), len(ids))
	}
	return out, nil
}

// Ended reports whether a task in state s will not change any more.
func Ended(s outpostv1.TaskState) bool {
	switch s {
	case outpostv1.TaskState_TASK_STATE_SUCCEEDED, outpostv1.TaskState_TASK_STATE_FAILED, outpostv1.TaskState_TASK_STATE_CANCELLED:
		return true
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
