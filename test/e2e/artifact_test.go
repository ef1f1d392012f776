package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/hubtest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// artifactProbe stands in for an executor that consumes artifacts (charts,
// bundles, modules): it reads each one to the end through the agent's
// fetcher and reports what it read.
type artifactProbe struct{}

func (artifactProbe) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	out := map[string]any{}
	for _, d := range t.Artifacts {
		r, err := t.Fetcher.Fetch(ctx, d)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, executor.Terminal(err)
		}
		out[d] = map[string]any{"bytes": n, "sha256": hex.EncodeToString(h.Sum(nil))}
	}
	return json.Marshal(out)
}

func upload(t *testing.T, h *hubtest.Hub, data []byte, declared string) (string, error) {
	t.Helper()
	stream := h.Operator.UploadArtifact(t.Context())
	if err := stream.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Header{Header: &outpostv1.ArtifactHeader{Digest: declared, Size: int64(len(data))}}}); err != nil {
		return "", err
	}
	for off := 0; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		if err := stream.Send(&outpostv1.UploadArtifactRequest{Part: &outpostv1.UploadArtifactRequest_Chunk{Chunk: data[off:end]}}); err != nil {
			break // the server refused; CloseAndReceive says why
		}
	}
	resp, err := stream.CloseAndReceive()
	if err != nil {
		return "", err
	}
	return resp.Msg.GetDigest(), nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestArtifacts(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Hub: func(o *hub.Options) {
		fastHub(o)
		o.MaxArtifactBytes = 8 << 20
	}})
	boot := h.CreateEnvironment(t, "prod")
	startAgent(t, h, agentConfig{bootstrap: boot, executors: map[string]executor.Executor{taskspec.KindHTTP: artifactProbe{}}})

	bundle := make([]byte, 5<<20+12345) // a manifest bundle of several MiB
	r := rand.New(rand.NewPCG(1, 2))
	for i := range bundle {
		bundle[i] = byte(r.IntN(256))
	}
	want := digestOf(bundle)

	t.Run("a multi-MiB artifact uploads in chunks under its content digest", func(t *testing.T) {
		got, err := upload(t, h, bundle, want)
		if err != nil || got != want {
			t.Fatalf("upload = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("the agent downloads and verifies the artifact its task declares", func(t *testing.T) {
		req := httpTask("uses-bundle", "prod", "https://unused.invalid/", nil)
		req.Artifacts = []string{want}
		h.Enqueue(t, req)
		got := h.WaitTask(t, "uses-bundle", 30*time.Second, hubtest.Terminal)
		if got.GetState() != outpostv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("state %v: %s", got.GetState(), got.GetError())
		}
		wantResult := fmt.Sprintf(`"bytes":%d`, len(bundle))
		if !bytes.Contains(got.GetResult(), []byte(wantResult)) || !bytes.Contains(got.GetResult(), []byte(want[len("sha256:"):])) {
			t.Fatalf("result %s does not show the whole verified artifact", got.GetResult())
		}
	})
	t.Run("content that does not match the declared digest is refused and not stored", func(t *testing.T) {
		other := digestOf([]byte("something else"))
		_, err := upload(t, h, []byte("tampered"), other)
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("upload error %v, want InvalidArgument", err)
		}
		if ok, _ := h.Store.BlobExists(t.Context(), h.Tenant, other); ok {
			t.Fatal("mismatched blob stored under the declared digest")
		}
		if ok, _ := h.Store.BlobExists(t.Context(), h.Tenant, digestOf([]byte("tampered"))); ok {
			t.Fatal("mismatched blob stored under its own digest")
		}
	})
	t.Run("an artifact over the cap is refused", func(t *testing.T) {
		_, err := upload(t, h, make([]byte, 9<<20), "")
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("upload error %v, want ResourceExhausted", err)
		}
	})
	t.Run("a task naming an artifact never uploaded is refused", func(t *testing.T) {
		req := httpTask("dangling", "prod", "https://unused.invalid/", nil)
		req.Artifacts = []string{digestOf([]byte("never uploaded"))}
		_, err := h.Operator.EnqueueTask(t.Context(), connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("enqueue error %v, want FailedPrecondition", err)
		}
	})
}
