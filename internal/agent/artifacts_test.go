package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
)

// fakeArtifactHub serves DownloadArtifact with whatever content and size a
// test gives it, so the agent's verification can be shown to catch a hub
// (or a proxy) that alters an artifact.
type fakeArtifactHub struct {
	outpostv1connect.UnimplementedAgentServiceHandler
	content []byte
	size    int64
}

func (f *fakeArtifactHub) DownloadArtifact(_ context.Context, _ *connect.Request[outpostv1.DownloadArtifactRequest], s *connect.ServerStream[outpostv1.DownloadArtifactResponse]) error {
	half := len(f.content) / 2
	if err := s.Send(&outpostv1.DownloadArtifactResponse{Size: f.size, Chunk: f.content[:half]}); err != nil {
		return err
	}
	return s.Send(&outpostv1.DownloadArtifactResponse{Chunk: f.content[half:]})
}

func TestArtifactVerification(t *testing.T) {
	good := []byte("the chart archive, byte for byte")
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	cases := []struct {
		name    string
		content []byte
		size    int64
		wantErr bool
	}{
		{"matching content verifies", good, int64(len(good)), false},
		{"altered content is refused", append([]byte("X"), good[1:]...), int64(len(good)), true},
		{"content longer than announced is refused", append(good, '!'), int64(len(good)), true},
		{"content shorter than announced is refused", good[:10], int64(len(good)), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(outpostv1connect.NewAgentServiceHandler(&fakeArtifactHub{content: tc.content, size: tc.size}))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			f := &artifactFetcher{client: outpostv1connect.NewAgentServiceClient(srv.Client(), srv.URL), taskID: "t1"}
			r, err := f.Fetch(t.Context(), digest)
			if err != nil {
				t.Fatal(err)
			}
			got, rerr := io.ReadAll(r)
			cerr := r.Close()
			if tc.wantErr {
				if !errors.Is(rerr, ErrArtifactCorrupt) || !errors.Is(cerr, ErrArtifactCorrupt) {
					t.Fatalf("read error %v, close error %v; want ErrArtifactCorrupt from both", rerr, cerr)
				}
				return
			}
			if rerr != nil || cerr != nil || string(got) != string(good) {
				t.Fatalf("read %q, %v, %v", got, rerr, cerr)
			}
		})
	}
	t.Run("a malformed digest is refused before any request", func(t *testing.T) {
		f := &artifactFetcher{client: outpostv1connect.NewAgentServiceClient(http.DefaultClient, "http://127.0.0.1:1"), taskID: "t1"}
		if _, err := f.Fetch(t.Context(), "md5:abc"); err == nil {
			t.Fatal("malformed digest accepted")
		}
	})
}
