package audit

import (
	"errors"
	"fmt"
)

// ErrChainBroken is wrapped by every verification failure.
var ErrChainBroken = errors.New("audit chain broken")

// Verifier checks a tenant's events one at a time, in order, so that an
// export of any length is verified in constant memory.
type Verifier struct {
	prev  Event
	count int64
}

// NewVerifier starts a verification after prev (the zero Event to start at
// the beginning of the chain).
func NewVerifier(prev Event) *Verifier {
	return &Verifier{prev: prev}
}

// Add checks e against the previous event: sequence without gaps, matching
// link and hash, same tenant.
func (v *Verifier) Add(e Event) error {
	if e.Seq != v.prev.Seq+1 {
		return fmt.Errorf("%w: event %d follows event %d (rows missing or reordered)", ErrChainBroken, e.Seq, v.prev.Seq)
	}
	if v.prev.Seq > 0 && e.Tenant != v.prev.Tenant {
		return fmt.Errorf("%w: event %d belongs to tenant %q, chain is %q", ErrChainBroken, e.Seq, e.Tenant, v.prev.Tenant)
	}
	if e.PrevHash != v.prev.Hash {
		return fmt.Errorf("%w: event %d does not link to event %d (previous row edited or deleted)", ErrChainBroken, e.Seq, v.prev.Seq)
	}
	if got := e.ComputeHash(); got != e.Hash {
		return fmt.Errorf("%w: event %d (%s) was modified: stored hash %.12s…, content hashes to %.12s…", ErrChainBroken, e.Seq, e.Action, e.Hash, got)
	}
	v.prev = e
	v.count++
	return nil
}

// Count is the number of events verified so far.
func (v *Verifier) Count() int64 { return v.count }

// Head is the last event verified.
func (v *Verifier) Head() Event { return v.prev }

// Verify checks a whole chain from its first event.
func Verify(events []Event) error {
	v := NewVerifier(Event{})
	for _, e := range events {
		if err := v.Add(e); err != nil {
			return err
		}
	}
	return nil
}
