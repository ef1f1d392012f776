package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// echoHeader is the response header in which the payments API sends back
// the Authorization header it received, as careless services do; the agent
// must redact it before reporting.
const echoHeader = "X-Echo-Authorization"

// payments stands in for a customer's internal service that only the agent
// can reach: POST /v1/rotate-keys rotates an API key and requires the
// bearer token kept in the agent's vault. It answers with the Authorization
// header echoed in a header and in the body, so the demo can show that the
// agent redacts what it reports.
type payments struct {
	token string
	srv   *http.Server
	url   string
	// authorized and refused count calls with the right token and without it.
	authorized, refused atomic.Int64
}

// rotateResponse is the payments API's answer.
type rotateResponse struct {
	Service   string    `json:"service"`
	Rotated   bool      `json:"rotated"`
	KeyID     string    `json:"key_id"`
	RotatedAt time.Time `json:"rotated_at"`
	// Echo is what careless services do: it holds the request's
	// Authorization header.
	Echo map[string]string `json:"echo"`
}

// startPayments listens on a free loopback port and serves until stop.
func startPayments(token string) (*payments, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("payments API: listen: %w", err)
	}
	p := &payments{token: token, url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rotate-keys", p.rotateKeys)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }() // ends with ErrServerClosed on stop
	return p, nil
}

func (p *payments) rotateKeys(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	got := r.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+p.token)) != 1 {
		p.refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	p.authorized.Add(1)
	w.Header().Set(echoHeader, got)
	_ = json.NewEncoder(w).Encode(rotateResponse{
		Service:   "payments",
		Rotated:   true,
		KeyID:     "key_" + rand.Text()[:12],
		RotatedAt: time.Now().UTC().Truncate(time.Second),
		Echo:      map[string]string{"authorization": got},
	})
}

// stop shuts the server down, waiting briefly for calls in flight.
func (p *payments) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = p.srv.Close()
	}
}
