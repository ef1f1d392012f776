package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes carried by agent access tokens.
const (
	ScopeTasks     = "agent:tasks"
	ScopeArtifacts = "agent:artifacts"
)

// Defaults for agent access tokens.
const (
	DefaultAccessTokenTTL = 15 * time.Minute
	DefaultAudience       = "outpost-agent-api"
	DefaultIssuer         = "outpost-hub"
)

// ErrInvalidToken wraps every access-token verification failure.
var ErrInvalidToken = errors.New("invalid access token")

// AgentClaims are the claims of an agent access token.
type AgentClaims struct {
	jwt.RegisteredClaims
	Tenant      string   `json:"tenant"`
	Environment string   `json:"env"`
	Scopes      []string `json:"scp"`
}

// HasScope reports whether the token grants scope.
func (c AgentClaims) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// TokenOptions configures a TokenAuthority.
type TokenOptions struct {
	// Key signs and verifies tokens.
	Key      ed25519.PrivateKey
	Issuer   string
	Audience string
	TTL      time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate checks the options and fills defaults.
func (o *TokenOptions) Validate() error {
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("auth: token signing key must be an Ed25519 private key")
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.TTL <= 0 {
		o.TTL = DefaultAccessTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// TokenAuthority issues and verifies agent access tokens.
type TokenAuthority struct {
	opts   TokenOptions
	pub    ed25519.PublicKey
	parser *jwt.Parser
}

// NewTokenAuthority returns an authority for opts.
func NewTokenAuthority(opts TokenOptions) (*TokenAuthority, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &TokenAuthority{
		opts: opts,
		pub:  opts.Key.Public().(ed25519.PublicKey),
		parser: jwt.NewParser(
			// Pinning the algorithm refuses "none" and any HS/RS confusion.
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(opts.Now),
		),
	}, nil
}

// Issue returns a token for an agent and its expiry.
func (a *TokenAuthority) Issue(agentID, tenant, environmentID string) (string, time.Time, error) {
	now := a.opts.Now()
	exp := now.Add(a.opts.TTL)
	claims := AgentClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.opts.Issuer,
			Subject:   agentID,
			Audience:  jwt.ClaimStrings{a.opts.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        NewID(""),
		},
		Tenant:      tenant,
		Environment: environmentID,
		Scopes:      []string{ScopeTasks, ScopeArtifacts},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(a.opts.Key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return s, exp, nil
}

// Verify checks a token's size, algorithm, signature, issuer, audience and
// expiry, and that it names an agent and an environment.
func (a *TokenAuthority) Verify(token string) (AgentClaims, error) {
	if len(token) > MaxTokenBytes {
		return AgentClaims{}, fmt.Errorf("%w: token is %d bytes, limit %d", ErrInvalidToken, len(token), MaxTokenBytes)
	}
	var claims AgentClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
		return a.pub, nil
	})
	if err != nil {
		return AgentClaims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.Environment == "" || claims.Tenant == "" {
		return AgentClaims{}, fmt.Errorf("%w: missing subject, tenant or environment", ErrInvalidToken)
	}
	return claims, nil
}
