package storetest

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

var identityScenarios = []scenario{
	{"a tenant is created once and read back", testTenants},
	{"an API token is found by its hash until it expires", testAPITokens},
	{"environments are unique by name within a tenant", testEnvironments},
	{"a bootstrap token enrolls exactly one agent", testEnrollment},
	{"a refused enrollment leaves the bootstrap token unused", testEnrollmentRefused},
	{"a nonce is consumed once and not after it expires", testNonces},
	{"agents are listed, touched and disabled within their tenant", testAgents},
	{"a setting keeps the first value stored", testSettings},
}

func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "acme", CreatedAt: T0}, "operator:root"))
	wantErr(t, s.CreateTenant(ctx, store.Tenant{Name: "acme", CreatedAt: T0}, "operator:root"), store.ErrAlreadyExists)
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Name != "acme" {
		t.Fatalf("tenant name = %q", got.Name)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, T0)
	_, err = s.GetTenant(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound)
}

func testAPITokens(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	hash := sha256.Sum256([]byte("secret-token"))
	forever := sha256.Sum256([]byte("forever-token"))
	must(t, s.CreateAPIToken(ctx, store.APIToken{
		ID: "tok1", Tenant: f.tenant, Name: "ci", Hash: hash[:], CreatedAt: T0, ExpiresAt: T0.Add(time.Hour),
	}, "operator:root"))
	must(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok2", Tenant: f.tenant, Name: "admin", Hash: forever[:], CreatedAt: T0}, "operator:root"))
	wantErr(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok1", Tenant: f.tenant, Name: "dup", Hash: []byte("x"), CreatedAt: T0}, "operator:root"), store.ErrAlreadyExists)
	wantErr(t, s.CreateAPIToken(ctx, store.APIToken{ID: "tok3", Tenant: "nobody", Name: "x", Hash: []byte("y"), CreatedAt: T0}, "operator:root"), store.ErrNotFound)

	tests := []struct {
		name  string
		hash  []byte
		now   time.Time
		found string
	}{
		{name: "a valid token is found", hash: hash[:], now: T0.Add(time.Minute), found: "tok1"},
		{name: "an expired token is not found", hash: hash[:], now: T0.Add(time.Hour)},
		{name: "a token without expiry is found much later", hash: forever[:], now: T0.Add(1000 * time.Hour), found: "tok2"},
		{name: "an unknown hash is not found", hash: []byte("nope"), now: T0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.GetAPITokenByHash(ctx, tt.hash, tt.now)
			if tt.found == "" {
				wantErr(t, err, store.ErrNotFound)
				return
			}
			must(t, err)
			if got.ID != tt.found || got.Tenant != f.tenant || !bytes.Equal(got.Hash, tt.hash) {
				t.Fatalf("token = %+v, want %s", got, tt.found)
			}
			wantTime(t, "CreatedAt", got.CreatedAt, T0)
		})
	}
}

func testEnvironments(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	must(t, s.CreateEnvironment(ctx, store.Environment{ID: "globex-prod", Tenant: "globex", Name: "prod", CreatedAt: T0}, "operator:root"))
	wantErr(t, s.CreateEnvironment(ctx, store.Environment{ID: "other", Tenant: f.tenant, Name: "prod", CreatedAt: T0}, "operator:root"), store.ErrAlreadyExists)
	wantErr(t, s.CreateEnvironment(ctx, store.Environment{ID: f.env.ID, Tenant: f.tenant, Name: "staging", CreatedAt: T0}, "operator:root"), store.ErrAlreadyExists)
	wantErr(t, s.CreateEnvironment(ctx, store.Environment{ID: "x", Tenant: "nobody", Name: "prod", CreatedAt: T0}, "operator:root"), store.ErrNotFound)

	got, err := s.GetEnvironment(ctx, f.env.ID)
	must(t, err)
	if got != f.env {
		t.Fatalf("GetEnvironment = %+v, want %+v", got, f.env)
	}
	got, err = s.GetEnvironmentByName(ctx, "globex", "prod")
	must(t, err)
	if got.ID != "globex-prod" {
		t.Fatalf("GetEnvironmentByName(globex, prod) = %s", got.ID)
	}
	_, err = s.GetEnvironment(ctx, "missing")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetEnvironmentByName(ctx, f.tenant, "missing")
	wantErr(t, err, store.ErrNotFound)

	list, err := s.ListEnvironments(ctx, f.tenant)
	must(t, err)
	if len(list) != 2 || list[0].Name != "dev" || list[1].Name != "prod" {
		t.Fatalf("ListEnvironments = %+v, want dev and prod", list)
	}
}

// enrollFixture is a fixture with a bootstrap token for its first
// environment.
func enrollFixture(t *testing.T, s store.Store) (*fixture, []byte) {
	f := newFixture(t, s)
	hash := sha256.Sum256([]byte("bootstrap-secret"))
	must(t, s.CreateBootstrapToken(t.Context(), store.BootstrapToken{
		ID: "bt1", Hash: hash[:], EnvironmentID: f.env.ID, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour), CreatedBy: "operator:root",
	}, "operator:root"))
	return f, hash[:]
}

func newAgent(id string) store.Agent {
	return store.Agent{ID: id, PublicKey: []byte("ed25519-public-key-" + id), Hostname: "node-" + id, Version: "1.2.3"}
}

func testEnrollment(t *testing.T, s store.Store) {
	f, hash := enrollFixture(t, s)
	ctx := t.Context()
	wantErr(t, s.CreateBootstrapToken(ctx, store.BootstrapToken{
		ID: "bt2", Hash: []byte("h2"), EnvironmentID: "missing", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour),
	}, "operator:root"), store.ErrNotFound)

	a, err := s.EnrollAgent(ctx, store.EnrollParams{TokenHash: hash, ExpectedEnvironmentID: f.env.ID, Agent: newAgent("a1"), Now: T0.Add(time.Minute)})
	must(t, err)
	if a.EnvironmentID != f.env.ID || a.Tenant != f.tenant || a.Disabled {
		t.Fatalf("enrolled agent = %+v", a)
	}
	wantTime(t, "EnrolledAt", a.EnrolledAt, T0.Add(time.Minute))
	got, err := s.GetAgent(ctx, "a1")
	must(t, err)
	if got.Hostname != "node-a1" || !bytes.Equal(got.PublicKey, []byte("ed25519-public-key-a1")) || got.Version != "1.2.3" {
		t.Fatalf("GetAgent = %+v", got)
	}
	wantTime(t, "EnrolledAt", got.EnrolledAt, T0.Add(time.Minute))

	_, err = s.EnrollAgent(ctx, store.EnrollParams{TokenHash: hash, Agent: newAgent("a2"), Now: T0.Add(2 * time.Minute)})
	wantErr(t, err, store.ErrTokenInvalid)
	_, err = s.GetAgent(ctx, "a2")
	wantErr(t, err, store.ErrNotFound)

	for _, e := range f.events(t) {
		if bytes.Contains([]byte(e.Details), []byte("bootstrap-secret")) || bytes.Contains([]byte(e.Details), hash) {
			t.Fatalf("event %s carries the token: %s", e.Action, e.Details)
		}
	}
}

func testEnrollmentRefused(t *testing.T, s store.Store) {
	f, hash := enrollFixture(t, s)
	ctx := t.Context()
	other := sha256.Sum256([]byte("other-token"))
	must(t, s.CreateBootstrapToken(ctx, store.BootstrapToken{ID: "bt-other", Hash: other[:], EnvironmentID: f.env.ID, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}, "operator:root"))
	_, err := s.EnrollAgent(ctx, store.EnrollParams{TokenHash: other[:], Agent: newAgent("existing"), Now: T0})
	must(t, err)
	tests := []struct {
		name   string
		params store.EnrollParams
		want   error
	}{
		{
			name:   "an unknown token is refused",
			params: store.EnrollParams{TokenHash: []byte("unknown"), Agent: newAgent("x1"), Now: T0},
			want:   store.ErrTokenInvalid,
		},
		{
			name:   "an expired token is refused",
			params: store.EnrollParams{TokenHash: hash, Agent: newAgent("x2"), Now: T0.Add(time.Hour)},
			want:   store.ErrTokenInvalid,
		},
		{
			name:   "a token of another environment is refused",
			params: store.EnrollParams{TokenHash: hash, ExpectedEnvironmentID: f.env2.ID, Agent: newAgent("x3"), Now: T0},
			want:   store.ErrTokenInvalid,
		},
		{
			name:   "an agent id already enrolled is refused",
			params: store.EnrollParams{TokenHash: hash, Agent: newAgent("existing"), Now: T0},
			want:   store.ErrAlreadyExists,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.EnrollAgent(ctx, tt.params)
			wantErr(t, err, tt.want)
			_, err = s.GetAgent(ctx, tt.params.Agent.ID)
			if tt.params.Agent.ID != "existing" {
				wantErr(t, err, store.ErrNotFound)
			}
		})
	}
	// The token is still unused: it enrolls now.
	if _, err := s.EnrollAgent(ctx, store.EnrollParams{TokenHash: hash, ExpectedEnvironmentID: f.env.ID, Agent: newAgent("a1"), Now: T0.Add(time.Minute)}); err != nil {
		t.Fatalf("enroll after refusals: %v (the token was consumed by a refused attempt)", err)
	}
}

func testNonces(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateNonce(ctx, []byte("n1"), T0.Add(time.Minute)))
	must(t, s.CreateNonce(ctx, []byte("n2"), T0.Add(time.Minute)))
	must(t, s.CreateNonce(ctx, []byte("n3"), T0.Add(time.Minute)))
	wantErr(t, s.CreateNonce(ctx, []byte("n1"), T0.Add(time.Minute)), store.ErrAlreadyExists)

	must(t, s.ConsumeNonce(ctx, []byte("n1"), T0))
	wantErr(t, s.ConsumeNonce(ctx, []byte("n1"), T0), store.ErrNonceInvalid)
	wantErr(t, s.ConsumeNonce(ctx, []byte("n2"), T0.Add(time.Minute)), store.ErrNonceInvalid)
	wantErr(t, s.ConsumeNonce(ctx, []byte("never"), T0), store.ErrNonceInvalid)

	// Sweep deletes expired nonces.
	_, err := s.Sweep(ctx, T0.Add(2*time.Minute), minutes)
	must(t, err)
	wantErr(t, s.ConsumeNonce(ctx, []byte("n3"), T0), store.ErrNonceInvalid)
}

func testAgents(t *testing.T, s store.Store) {
	f, hash := enrollFixture(t, s)
	ctx := t.Context()
	_, err := s.EnrollAgent(ctx, store.EnrollParams{TokenHash: hash, Agent: newAgent("a1"), Now: T0})
	must(t, err)
	hash2 := sha256.Sum256([]byte("dev-token"))
	must(t, s.CreateBootstrapToken(ctx, store.BootstrapToken{ID: "bt-dev", Hash: hash2[:], EnvironmentID: f.env2.ID, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}, "operator:root"))
	_, err = s.EnrollAgent(ctx, store.EnrollParams{TokenHash: hash2[:], Agent: newAgent("a2"), Now: T0.Add(time.Second)})
	must(t, err)

	all, err := s.ListAgents(ctx, f.tenant, "")
	must(t, err)
	if len(all) != 2 || all[0].ID != "a1" || all[1].ID != "a2" {
		t.Fatalf("ListAgents = %v", all)
	}
	dev, err := s.ListAgents(ctx, f.tenant, f.env2.ID)
	must(t, err)
	if len(dev) != 1 || dev[0].ID != "a2" {
		t.Fatalf("ListAgents(dev) = %v", dev)
	}
	none, err := s.ListAgents(ctx, "globex", "")
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("another tenant sees %d agents", len(none))
	}

	must(t, s.TouchAgent(ctx, "a1", "1.3.0", T0.Add(time.Hour)))
	must(t, s.TouchAgent(ctx, "a1", "", T0.Add(2*time.Hour)))
	wantErr(t, s.TouchAgent(ctx, "ghost", "1.0", T0), store.ErrNotFound)
	a, err := s.GetAgent(ctx, "a1")
	must(t, err)
	if a.Version != "1.3.0" {
		t.Fatalf("version = %q, want 1.3.0", a.Version)
	}
	wantTime(t, "LastSeenAt", a.LastSeenAt, T0.Add(2*time.Hour))

	_, err = s.DisableAgent(ctx, "globex", "a1", "operator:root", T0)
	wantErr(t, err, store.ErrNotFound)
	a, err = s.DisableAgent(ctx, f.tenant, "a1", "operator:root", T0.Add(3*time.Hour))
	must(t, err)
	if !a.Disabled {
		t.Fatal("DisableAgent returned an enabled agent")
	}
	wantTime(t, "DisabledAt", a.DisabledAt, T0.Add(3*time.Hour))
	before := len(f.events(t))
	again, err := s.DisableAgent(ctx, f.tenant, "a1", "operator:root", T0.Add(4*time.Hour))
	must(t, err)
	wantTime(t, "DisabledAt after a second disable", again.DisabledAt, T0.Add(3*time.Hour))
	if after := len(f.events(t)); after != before {
		t.Fatalf("disabling a disabled agent appended %d events", after-before)
	}
	a, err = s.GetAgent(ctx, "a1")
	must(t, err)
	if !a.Disabled {
		t.Fatal("GetAgent: agent not disabled")
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.GetOrCreateSetting(ctx, "jwt-key", []byte("first"))
	must(t, err)
	if string(got) != "first" {
		t.Fatalf("first GetOrCreateSetting = %q", got)
	}
	got, err = s.GetOrCreateSetting(ctx, "jwt-key", []byte("second"))
	must(t, err)
	if string(got) != "first" {
		t.Fatalf("second GetOrCreateSetting = %q, want the first value", got)
	}
}
