package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/executor"
)

// ErrArtifactCorrupt means downloaded content does not match its digest or size.
var ErrArtifactCorrupt = errors.New("artifact does not match its digest")

// artifactFetcher downloads a task's artifacts from the hub.
type artifactFetcher struct {
	client outpostv1connect.AgentServiceClient
	taskID string
}

var _ executor.ArtifactFetcher = (*artifactFetcher)(nil)

// Fetch streams the artifact; the reader verifies size and digest and fails
// at the end of the content if either is wrong.
func (f *artifactFetcher) Fetch(ctx context.Context, digest string) (io.ReadCloser, error) {
	want, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(want) != 64 {
		return nil, fmt.Errorf("agent: artifact digest %q is not sha256:<hex>", digest)
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := f.client.DownloadArtifact(ctx, connect.NewRequest(&outpostv1.DownloadArtifactRequest{Digest: digest, TaskId: f.taskID}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("agent: download artifact %s: %w", digest, err)
	}
	return &verifyingReader{stream: stream, cancel: cancel, digest: digest, want: want, h: sha256.New(), size: -1}, nil
}

type verifyingReader struct {
	stream *connect.ServerStreamForClient[outpostv1.DownloadArtifactResponse]
	cancel context.CancelFunc
	digest string
	want   string
	h      hash.Hash
	buf    []byte
	size   int64
	read   int64
	err    error
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.buf) == 0 {
		if !r.stream.Receive() {
			if err := r.stream.Err(); err != nil {
				r.err = fmt.Errorf("agent: download artifact %s: %w", r.digest, err)
				return 0, r.err
			}
			r.err = r.verify()
			if r.err == nil {
				r.err = io.EOF
			}
			return 0, r.err
		}
		msg := r.stream.Msg()
		if r.size < 0 {
			r.size = msg.GetSize()
		}
		r.buf = msg.GetChunk()
		r.read += int64(len(r.buf))
		if r.size >= 0 && r.read > r.size {
			r.err = fmt.Errorf("%w: %s sent more than its %d bytes", ErrArtifactCorrupt, r.digest, r.size)
			return 0, r.err
		}
		r.h.Write(r.buf)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *verifyingReader) verify() error {
	if r.read != r.size {
		return fmt.Errorf("%w: %s is %d bytes, received %d", ErrArtifactCorrupt, r.digest, r.size, r.read)
	}
	if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want {
		return fmt.Errorf("%w: %s hashes to sha256:%s", ErrArtifactCorrupt, r.digest, got)
	}
	return nil
}

// Close releases the stream. It returns the verification error when the
// content was read to its end and did not match; closing early claims
// nothing about the content.
func (r *verifyingReader) Close() error {
	r.cancel()
	_ = r.stream.Close()
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return r.err
	}
	return nil
}
