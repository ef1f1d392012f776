package hub_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/hubtest"
)

func TestResponseCompression(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	h.CreateEnvironment(t, "prod")
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "small", Environment: "prod", Kind: "http", Spec: httpSpec("https://example.invalid/")})
	big := `{"method":"POST","url":"https://example.invalid/","body":"` + strings.Repeat("x", 16<<10) + `"}`
	h.Enqueue(t, &outpostv1.EnqueueTaskRequest{Id: "big", Environment: "prod", Kind: "http", Spec: []byte(big)})

	// getTask asks for a task as a client accepting gzip and returns the
	// response's Content-Encoding. Setting Accept-Encoding by hand keeps
	// the transport from decoding the body and hiding the header.
	getTask := func(t *testing.T, id string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL+"/outpost.v1.OperatorService/GetTask", strings.NewReader(`{"id":"`+id+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip")
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GetTask %s: HTTP %d", id, resp.StatusCode)
		}
		return resp.Header.Get("Content-Encoding")
	}

	t.Run("a small response is sent uncompressed", func(t *testing.T) {
		if enc := getTask(t, "small"); enc != "" {
			t.Fatalf("Content-Encoding %q, want none", enc)
		}
	})
	t.Run("a response over 4 KiB is gzipped", func(t *testing.T) {
		if enc := getTask(t, "big"); enc != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", enc)
		}
	})
}
