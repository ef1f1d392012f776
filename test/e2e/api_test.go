package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// countingAPI is an internal endpoint that counts calls per path, can take
// its time, and can hold the first call of each path until the test ends
// (an attempt whose agent dies mid-request).
type countingAPI struct {
	srv        *httptest.Server
	delay      time.Duration
	blockFirst bool

	mu    sync.Mutex
	calls map[string]int
	stop  chan struct{}
}

func newCountingAPI(t *testing.T, delay time.Duration) *countingAPI {
	t.Helper()
	a := &countingAPI{delay: delay, calls: map[string]int{}, stop: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(func() {
		close(a.stop)
		a.srv.Close()
	})
	return a
}

func (a *countingAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls[r.URL.Path]++
	n := a.calls[r.URL.Path]
	a.mu.Unlock()
	if a.blockFirst && n == 1 {
		select {
		case <-a.stop:
		case <-r.Context().Done():
		}
		return
	}
	select {
	case <-time.After(a.delay):
	case <-r.Context().Done():
		return
	}
	fmt.Fprintf(w, `{"path":%q,"call":%d}`, r.URL.Path, n)
}

func (a *countingAPI) url(path string) string { return a.srv.URL + path }

func (a *countingAPI) waitCalls(t *testing.T, path string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		c := a.calls[path]
		a.mu.Unlock()
		if c >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s called fewer than %d times in %v", path, n, timeout)
}
