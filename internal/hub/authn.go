package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
)

// agentCaller is an authenticated, enabled agent.
type agentCaller struct {
	agent       store.Agent
	env         store.Environment
	tokenExpiry time.Time
}

// operatorCaller is an authenticated operator token.
type operatorCaller struct {
	token store.APIToken
}

func (c operatorCaller) actor() string { return "operator:" + c.token.ID }

func bearer(hdr http.Header) (string, error) {
	v := hdr.Get("Authorization")
	if v == "" {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token"))
	}
	if len(v) > auth.MaxTokenBytes+len("Bearer ") {
		return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("bearer token over %d bytes", auth.MaxTokenBytes))
	}
	tok, ok := strings.CutPrefix(v, "Bearer ")
	if !ok || tok == "" {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("authorization header is not a bearer token"))
	}
	return tok, nil
}

// authAgent verifies the access token and that the agent is still enabled
// and still belongs to the environment the token names. It runs on every
// call, so disabling an agent takes effect at its next call.
func (h *Hub) authAgent(ctx context.Context, hdr http.Header, scope string) (agentCaller, error) {
	tok, err := bearer(hdr)
	if err != nil {
		return agentCaller{}, err
	}
	now := h.opts.Now()
	claims, ok := h.verified.get(tok, now)
	if !ok {
		if claims, err = h.tokens.Verify(tok); err != nil {
			return agentCaller{}, connect.NewError(connect.CodeUnauthenticated, err)
		}
		h.verified.put(tok, claims, now)
	}
	if !claims.HasScope(scope) {
		return agentCaller{}, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("access token lacks scope %s", scope))
	}
	agent, err := h.store.GetAgent(ctx, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return agentCaller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("agent is not enrolled"))
	}
	if err != nil {
		return agentCaller{}, storeError("authenticate agent", err)
	}
	if agent.Disabled {
		return agentCaller{}, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("agent %s is disabled", agent.ID))
	}
	if agent.EnvironmentID != claims.Environment || agent.Tenant != claims.Tenant {
		return agentCaller{}, connect.NewError(connect.CodePermissionDenied, errors.New("access token environment does not match the agent"))
	}
	env, err := h.environment(ctx, agent.EnvironmentID)
	if err != nil {
		return agentCaller{}, storeError("authenticate agent", err)
	}
	h.notifier.seen(agent.ID)
	return agentCaller{agent: agent, env: env, tokenExpiry: claims.ExpiresAt.Time}, nil
}

// authOperator looks the API token up by its hash.
func (h *Hub) authOperator(ctx context.Context, hdr http.Header) (operatorCaller, error) {
	tok, err := bearer(hdr)
	if err != nil {
		return operatorCaller{}, err
	}
	if !strings.HasPrefix(tok, auth.PrefixAPIToken) {
		return operatorCaller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("not an operator API token"))
	}
	t, err := h.store.GetAPITokenByHash(ctx, auth.HashToken(tok), h.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		return operatorCaller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown or expired API token"))
	}
	if err != nil {
		return operatorCaller{}, storeError("authenticate operator", err)
	}
	return operatorCaller{token: t}, nil
}

// storeError maps store errors to API codes; unexpected errors are logged
// by the caller's interceptor and shown generically.
func storeError(op string, err error) error {
	code := connect.CodeInternal
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrIdempotencyMismatch):
		code = connect.CodeAlreadyExists
	case errors.Is(err, store.ErrStaleEpoch):
		code = connect.CodeAborted
	case errors.Is(err, store.ErrTokenInvalid), errors.Is(err, store.ErrNonceInvalid):
		code = connect.CodePermissionDenied
	case errors.Is(err, store.ErrTooLarge):
		code = connect.CodeResourceExhausted
	case errors.Is(err, store.ErrDigestMismatch):
		code = connect.CodeInvalidArgument
	case errors.Is(err, store.ErrReleaseKindChanged), errors.Is(err, store.ErrReleaseDeleting), errors.Is(err, store.ErrKeyMismatch):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	if code == connect.CodeInternal {
		return connect.NewError(code, fmt.Errorf("%s: internal error", op))
	}
	return connect.NewError(code, fmt.Errorf("%s: %w", op, err))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}
