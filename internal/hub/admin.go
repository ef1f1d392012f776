package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/store"
)

// CreateAdminToken creates the tenant if needed and an operator API token
// in it, and returns the token; only its hash is stored. It is how the
// first operator of a tenant gets in (`outpost-hub admin token`).
func CreateAdminToken(ctx context.Context, st store.Store, tenant, name string, ttl time.Duration, now time.Time) (string, error) {
	if err := CheckName("tenant", tenant); err != nil {
		return "", err
	}
	if name == "" || len(name) > 64 {
		return "", errors.New("token name must be 1-64 characters")
	}
	if _, err := st.GetTenant(ctx, tenant); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateTenant(ctx, store.Tenant{Name: tenant, CreatedAt: now}, "hub-admin"); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return "", fmt.Errorf("create tenant: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("tenant: %w", err)
	}
	token, err := auth.NewToken(auth.PrefixAPIToken)
	if err != nil {
		return "", err
	}
	row := store.APIToken{ID: auth.NewID("tok_"), Tenant: tenant, Name: name, Hash: auth.HashToken(token), CreatedAt: now}
	if ttl > 0 {
		row.ExpiresAt = now.Add(ttl)
	}
	if err := st.CreateAPIToken(ctx, row, "hub-admin"); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return token, nil
}
