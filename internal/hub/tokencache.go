package hub

import (
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/auth"
)

// maxVerifiedTokens bounds verifiedTokens: a few per connected agent (an
// agent holds one token at a time and refreshes it at about 2/3 of its
// life).
const maxVerifiedTokens = 1 << 16

// verifiedTokens remembers the claims of access tokens whose signature
// and claims verified, until the token expires, so that an agent's every
// call does not verify an Ed25519 signature again (a sixth of the hub's
// CPU under load). The key is the whole token, so only the exact bytes
// that verified are accepted from the cache. Tokens are signed by the one
// key the hub loaded at start and never change, so a verification holds
// until exp; the checks that can change (agent disabled, moved) are still
// made against the store on every call. An entry stops being used at exp
// exactly, stricter than the verifier's leeway; after that the token goes
// through full verification again.
type verifiedTokens struct {
	mu sync.RWMutex
	m  map[string]auth.AgentClaims
}

func newVerifiedTokens() *verifiedTokens {
	return &verifiedTokens{m: make(map[string]auth.AgentClaims)}
}

// get returns the claims of tok if it verified before and has not expired
// by now.
func (c *verifiedTokens) get(tok string, now time.Time) (auth.AgentClaims, bool) {
	c.mu.RLock()
	claims, ok := c.m[tok]
	c.mu.RUnlock()
	if !ok || claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Time) {
		return auth.AgentClaims{}, false
	}
	return claims, true
}

// put remembers that tok verified with claims. When the cache is full it
// first drops expired entries, and everything if that is not enough.
func (c *verifiedTokens) put(tok string, claims auth.AgentClaims, now time.Time) {
	if claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Time) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxVerifiedTokens {
		for k, v := range c.m {
			if !now.Before(v.ExpiresAt.Time) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxVerifiedTokens {
			clear(c.m)
		}
	}
	c.m[tok] = claims
}
