package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/auth"
)

// ErrDisabled means the hub refuses this agent because an operator disabled it.
var ErrDisabled = errors.New("agent disabled by an operator")

// session holds the agent's identity and a fresh access token.
type session struct {
	client outpostv1connect.AgentServiceClient
	opts   *Options

	mu       sync.Mutex
	id       Identity
	token    string
	expires  time.Time
	issuedAt time.Time
}

func (s *session) current() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.expires
}

func (s *session) set(tok *outpostv1.AccessToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok.GetToken()
	s.expires = tok.GetExpiresAt().AsTime()
	s.issuedAt = s.opts.Now()
}

// authInterceptor adds the access token to every call but the three that
// establish it.
type authInterceptor struct{ s *session }

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if tok, _ := i.s.current(); tok != "" {
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		return next(ctx, req)
	}
}

func (i authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if tok, _ := i.s.current(); tok != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+tok)
		}
		return conn
	}
}

func (authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// establish loads the identity (enrolling first if there is none) and
// obtains an access token.
func (s *session) establish(ctx context.Context) error {
	id, err := s.opts.Identity.Load(ctx)
	if errors.Is(err, ErrNoIdentity) {
		return s.enroll(ctx)
	}
	if err != nil {
		return err
	}
	if s.opts.Environment != "" && id.Environment != "" && id.Environment != s.opts.Environment {
		return fmt.Errorf("agent: stored identity belongs to environment %s, not %s; remove it to enroll again", id.Environment, s.opts.Environment)
	}
	s.mu.Lock()
	s.id = id
	s.mu.Unlock()
	return s.refresh(ctx)
}

func (s *session) challenge(ctx context.Context) ([]byte, error) {
	resp, err := s.client.Challenge(ctx, connect.NewRequest(&outpostv1.ChallengeRequest{}))
	if err != nil {
		return nil, fmt.Errorf("agent: challenge: %w", err)
	}
	return resp.Msg.GetNonce(), nil
}

func (s *session) enroll(ctx context.Context) error {
	if s.opts.BootstrapToken == "" {
		return errors.New("agent: not enrolled and no bootstrap token given; mint one with `outpost token create --env <name>`")
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("agent: generate key: %w", err)
	}
	nonce, err := s.challenge(ctx)
	if err != nil {
		return err
	}
	resp, err := s.client.Enroll(ctx, connect.NewRequest(&outpostv1.EnrollRequest{
		BootstrapToken: s.opts.BootstrapToken,
		PublicKey:      pub,
		Nonce:          nonce,
		Signature:      auth.SignEnroll(key, nonce),
		Environment:    s.opts.Environment,
		Hostname:       s.opts.Hostname,
		Version:        s.opts.Version,
	}))
	if err != nil {
		return fmt.Errorf("agent: enroll: %w", err)
	}
	id := Identity{AgentID: resp.Msg.GetAgentId(), Environment: resp.Msg.GetEnvironment(), Key: key}
	if err := s.opts.Identity.Save(ctx, id); err != nil {
		return fmt.Errorf("agent: enrolled as %s but could not keep the identity: %w", id.AgentID, err)
	}
	s.mu.Lock()
	s.id = id
	s.mu.Unlock()
	s.set(resp.Msg.GetToken())
	s.opts.Logger.Info("enrolled", "agent", id.AgentID, "environment", id.Environment)
	return nil
}

func (s *session) refresh(ctx context.Context) error {
	s.mu.Lock()
	id := s.id
	s.mu.Unlock()
	nonce, err := s.challenge(ctx)
	if err != nil {
		return err
	}
	resp, err := s.client.RefreshToken(ctx, connect.NewRequest(&outpostv1.RefreshTokenRequest{
		AgentId: id.AgentID, Nonce: nonce, Signature: auth.SignRefresh(id.Key, nonce, id.AgentID),
	}))
	if connect.CodeOf(err) == connect.CodePermissionDenied {
		return fmt.Errorf("%w: %w", ErrDisabled, err)
	}
	if err != nil {
		return fmt.Errorf("agent: refresh token: %w", err)
	}
	s.set(resp.Msg.GetToken())
	return nil
}

// keepFresh refreshes the token at about two thirds of its life, with
// jitter so a fleet does not refresh in step, until ctx ends. It returns
// ErrDisabled when the hub refuses the agent.
func (s *session) keepFresh(ctx context.Context) error {
	failures := int64(0)
	for {
		s.mu.Lock()
		life := s.expires.Sub(s.issuedAt)
		at := s.issuedAt.Add(life * 2 / 3)
		s.mu.Unlock()
		// ±10% of the life around the two-thirds mark.
		jitter := time.Duration((mrand.Float64()*0.2 - 0.1) * float64(life)) //nolint:gosec // jitter needs no unpredictability
		wait := at.Add(jitter).Sub(s.opts.Now())
		if failures > 0 {
			wait = s.opts.Reconnect.Delay(failures)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		err := s.refresh(ctx)
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, ErrDisabled):
			return err
		case ctx.Err() != nil:
			return nil //nolint:nilerr // the agent is stopping
		default:
			failures++
			s.opts.Logger.Warn("token refresh failed; retrying", "error", err, "attempt", failures)
		}
	}
}

func (s *session) agentID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id.AgentID
}
