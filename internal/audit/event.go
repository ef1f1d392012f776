package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Action names recorded in the log.
const (
	ActionTenantCreated           = "tenant.created"
	ActionAPITokenCreated         = "token.api_created"
	ActionBootstrapTokenCreated   = "token.bootstrap_created"
	ActionEnvironmentCreated      = "environment.created"
	ActionAgentRegistered         = "agent.registered"
	ActionAgentDisabled           = "agent.disabled"
	ActionTaskEnqueued            = "task.enqueued"
	ActionTaskCancelRequested     = "task.cancel_requested"
	ActionTaskCancelled           = "task.cancelled"
	ActionTaskClaimed             = "agent.task_claimed"
	ActionTaskCompleted           = "agent.task_completed"
	ActionTaskFailed              = "agent.task_failed"
	ActionTaskLeaseExpired        = "task.lease_expired"
	ActionTaskDeadlineExceeded    = "task.deadline_exceeded"
	ActionAgentSelfUpdateApplied  = "agent.self_update_applied"
	ActionAgentSelfUpdateReverted = "agent.self_update_reverted"
)

// Event is one entry of a tenant's chain. Seq starts at 1 and has no gaps;
// PrevHash is the Hash of the event with Seq-1 ("" for the first); Hash is
// ComputeHash of the event. Time is kept to the microsecond, the precision
// every store round-trips.
type Event struct {
	Seq         int64
	Time        time.Time
	Tenant      string
	Environment string
	Actor       string
	Action      string
	Subject     string
	// Details is a JSON object; it is hashed as stored, byte for byte.
	Details  string
	PrevHash string
	Hash     string
}

// NewDetails encodes a details object; values must not hold secrets.
func NewDetails(kv map[string]any) string {
	if len(kv) == 0 {
		return "{}"
	}
	b, err := json.Marshal(kv)
	if err != nil {
		return "{}"
	}
	return string(b)
}

const hashDomain = "outpost-audit-v1"

// ComputeHash returns the hex SHA-256 over the domain tag, PrevHash and every
// field of e, each length-prefixed so that no two events encode alike.
func (e Event) ComputeHash() string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	field := func(s string) {
		n := binary.PutUvarint(buf[:], uint64(len(s)))
		h.Write(buf[:n])
		h.Write([]byte(s))
	}
	field(hashDomain)
	field(e.PrevHash)
	n := binary.PutVarint(buf[:], e.Seq)
	h.Write(buf[:n])
	n = binary.PutVarint(buf[:], e.Time.UnixMicro())
	h.Write(buf[:n])
	field(e.Tenant)
	field(e.Environment)
	field(e.Actor)
	field(e.Action)
	field(e.Subject)
	field(e.Details)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal sets e's Seq, PrevHash and Hash so that it follows prev, where prev
// is the tenant's last event (the zero Event when the chain is empty).
// Time is truncated to the microsecond first.
func (e *Event) Seal(prev Event) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Seq = prev.Seq + 1
	e.PrevHash = prev.Hash
	e.Hash = e.ComputeHash()
}
