package main

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
	"syscall"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/transport"
)

// benchTenant is the tenant of the RSS phase's environment.
const benchTenant = "bench"

// child is a process the benchmark started; it dies with the benchmark.
type child struct {
	name    string
	cmd     *exec.Cmd
	exited  chan error
	logPath string
	logFile *os.File
}

// startChild starts bin with args, its output in logPath.
func startChild(bin, logPath string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath) //nolint:gosec // our own temp dir
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // our own build
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=")
	// The child dies with the benchmark, even if the benchmark is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	c := &child{name: filepath.Base(bin), cmd: cmd, exited: make(chan error, 1), logPath: logPath, logFile: logFile}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL after 20 s, and waits.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	_ = c.logFile.Close()
}

// alive fails when the process has exited, quoting its log.
func (c *child) alive() error {
	select {
	case err := <-c.exited:
		c.exited <- err
		if err == nil {
			err = errors.New("exit status 0")
		}
		return fmt.Errorf("%s exited (%w): %s", c.name, err, procstat.Tail(c.logPath, 15))
	default:
		return nil
	}
}

// hubProc is an outpost-hub process on SQLite and an operator client for it.
type hubProc struct {
	*child
	url, caFile string
	op          outpostv1connect.OperatorServiceClient
	client      *http.Client
}

// startHub creates the bench tenant and its operator token, then serves a
// fresh SQLite database on a free loopback port until /readyz answers.
func startHub(ctx context.Context, bin, dir string) (*hubProc, error) {
	db := filepath.Join(dir, "hub.db")
	var stdout, stderr bytes.Buffer
	tok := exec.CommandContext(ctx, bin, "--db", db, "--log-level", "warn", "admin", "token", "--tenant", benchTenant, "--name", "bench") //nolint:gosec // our own build
	tok.Stdout, tok.Stderr = &stdout, &stderr
	if err := tok.Run(); err != nil {
		return nil, fmt.Errorf("outpost-hub admin token: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	token := strings.TrimSpace(stdout.String())
	addr, err := procstat.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	c, err := startChild(bin, filepath.Join(dir, "hub.log"), "--db", db, "--log-level", "warn", "serve", "--listen", addr, "--dev-tls-dir", tlsDir)
	if err != nil {
		return nil, err
	}
	h := &hubProc{child: c, url: "https://" + addr, caFile: filepath.Join(tlsDir, devcert.CAFile)}
	if err := h.waitReady(ctx); err != nil {
		h.stop()
		return nil, err
	}
	h.op = outpostv1connect.NewOperatorServiceClient(h.client, h.url, connect.WithInterceptors(hubtest.WithToken(token)))
	return h, nil
}

func (h *hubProc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := h.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if h.client == nil {
			// The CA appears once the hub has made its certificate.
			if _, err := os.Stat(h.caFile); err != nil {
				continue
			}
			c, err := transport.NewClient(transport.Options{CAFile: h.caFile})
			if err != nil {
				continue
			}
			h.client = c
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/readyz", nil)
		resp, err := h.client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("outpost-hub did not become ready within 60s: %s", procstat.Tail(h.logPath, 15))
}

// upload stores data as an artifact in chunks and returns its digest.
func (h *hubProc) upload(ctx context.Context, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	stream := h.op.UploadArtifact(ctx)
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
