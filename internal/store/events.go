package store

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/outposthq/outpost/internal/audit"
)

// The audit events of the non-queue changes, built here so that both
// stores record the same thing. Details never carry token values or hashes.

// KeyFingerprint is how an agent's public key is named in events.
func KeyFingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TenantCreatedEvent records t's creation.
func TenantCreatedEvent(t Tenant, actor string) audit.Event {
	return audit.Event{
		Time: t.CreatedAt, Tenant: t.Name, Actor: actor,
		Action: audit.ActionTenantCreated, Subject: t.Name, Details: "{}",
	}
}

// APITokenCreatedEvent records tok's creation.
func APITokenCreatedEvent(tok APIToken, actor string) audit.Event {
	details := map[string]any{"name": tok.Name}
	if !tok.ExpiresAt.IsZero() {
		details["expires_at"] = Micro(tok.ExpiresAt).Format(time.RFC3339Nano)
	}
	return audit.Event{
		Time: tok.CreatedAt, Tenant: tok.Tenant, Actor: actor,
		Action: audit.ActionAPITokenCreated, Subject: tok.ID, Details: audit.NewDetails(details),
	}
}

// EnvironmentCreatedEvent records env's creation.
func EnvironmentCreatedEvent(env Environment, actor string) audit.Event {
	return audit.Event{
		Time: env.CreatedAt, Tenant: env.Tenant, Environment: env.Name, Actor: actor,
		Action: audit.ActionEnvironmentCreated, Subject: env.ID,
		Details: audit.NewDetails(map[string]any{"id": env.ID}),
	}
}

// BootstrapTokenCreatedEvent records tok's creation for env.
func BootstrapTokenCreatedEvent(tok BootstrapToken, env Environment, actor string) audit.Event {
	return audit.Event{
		Time: tok.CreatedAt, Tenant: env.Tenant, Environment: env.Name, Actor: actor,
		Action: audit.ActionBootstrapTokenCreated, Subject: tok.ID,
		Details: audit.NewDetails(map[string]any{
			"expires_at": Micro(tok.ExpiresAt).Format(time.RFC3339Nano),
			"created_by": tok.CreatedBy,
		}),
	}
}

// AgentRegisteredEvent records a's enrollment into env with the bootstrap
// token tokenID.
func AgentRegisteredEvent(a Agent, env Environment, tokenID string) audit.Event {
	return audit.Event{
		Time: a.EnrolledAt, Tenant: env.Tenant, Environment: env.Name, Actor: AgentActor(a.ID),
		Action: audit.ActionAgentRegistered, Subject: a.ID,
		Details: audit.NewDetails(map[string]any{
			"env":             env.Name,
			"key_fingerprint": KeyFingerprint(a.PublicKey),
			"hostname":        a.Hostname,
			"version":         a.Version,
			"bootstrap_token": tokenID,
		}),
	}
}

// AgentDisabledEvent records that a was disabled.
func AgentDisabledEvent(a Agent, env Environment, actor string) audit.Event {
	return audit.Event{
		Time: a.DisabledAt, Tenant: env.Tenant, Environment: env.Name, Actor: actor,
		Action: audit.ActionAgentDisabled, Subject: a.ID,
		Details: audit.NewDetails(map[string]any{"key_fingerprint": KeyFingerprint(a.PublicKey)}),
	}
}
