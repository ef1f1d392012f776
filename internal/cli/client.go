package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/transport"
)

// maxResponseBytes bounds every message read from the hub.
const maxResponseBytes = 16 << 20

// dial loads the config and returns a client for its hub.
func (a *app) dial() (outpostv1connect.OperatorServiceClient, Config, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, Config{}, err
	}
	c, err := a.newClient(cfg)
	return c, cfg, err
}

// newClient returns an OperatorService client for cfg's hub that sends
// cfg's token on every call. Only https:// hubs are accepted.
func (a *app) newClient(cfg Config) (outpostv1connect.OperatorServiceClient, error) {
	u, err := transport.CheckHubURL(cfg.Hub)
	if err != nil {
		return nil, fmt.Errorf("%w; use the hub's https:// URL", err)
	}
	hc := a.opts.HTTPClient
	if hc == nil {
		hc, err = transport.NewClient(transport.Options{CAFile: cfg.CAFile})
		if err != nil {
			return nil, fmt.Errorf("%w; check --ca-file", err)
		}
		hc.CheckRedirect = refuseRedirect
	}
	return outpostv1connect.NewOperatorServiceClient(hc, u.String(),
		connect.WithInterceptors(bearerToken(cfg.Token)),
		connect.WithReadMaxBytes(maxResponseBytes),
	), nil
}

// refuseRedirect keeps the bearer token from following a redirect anywhere:
// the configured URL must be the hub's own.
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the hub redirected to %s; set the hub URL to where it serves the API", req.URL.Redacted())
}

// bearerToken is a connect interceptor that authenticates every unary and
// streaming call with an operator API token.
type bearerToken string

var _ connect.Interceptor = bearerToken("")

func (t bearerToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(t))
		return next(ctx, req)
	}
}

func (t bearerToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(t))
		return conn
	}
}

func (t bearerToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// apiError turns an error from a hub call into one a user can act on: the
// operation, the hub's message, and what to do about it.
func apiError(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted", op)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%s: the hub's TLS certificate is not signed by a trusted CA: pass its CA bundle with --ca-file", op)
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Errorf("%s: the hub's TLS certificate does not match its URL: %w", op, err)
	}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := ce.Message()
	if msg == "" {
		msg = ce.Code().String()
	}
	var hint string
	switch ce.Code() {
	case connect.CodeUnauthenticated:
		hint = "; the API token was refused: " + loginHint + " with a valid token"
	case connect.CodePermissionDenied:
		hint = "; the API token lacks the permission: ask a tenant admin for one that has it"
	case connect.CodeUnavailable:
		hint = "; check the hub URL, the network and HTTPS_PROXY"
	case connect.CodeUnimplemented:
		hint = "; the hub does not support this call: upgrade the hub or use a matching outpost CLI"
	}
	return &hubError{op: op, msg: msg + hint, err: ce}
}

// hubError is a failed hub call, shown as its message rather than a dump.
type hubError struct {
	op, msg string
	err     *connect.Error
}

func (e *hubError) Error() string { return e.op + ": " + e.msg }

// Unwrap returns the connect error, so callers can read its code.
func (e *hubError) Unwrap() error { return e.err }
