package audit

import (
	"errors"
	"testing"
	"time"
)

func chain(n int) []Event {
	var out []Event
	prev := Event{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	for i := range n {
		e := Event{Time: t0.Add(time.Duration(i) * time.Second), Tenant: "acme", Actor: "hub", Action: ActionTaskEnqueued, Subject: "task/x", Details: `{"i":1}`}
		e.Seal(prev)
		out = append(out, e)
		prev = e
	}
	return out
}

func TestVerify(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func([]Event) []Event
		wantErr bool
	}{
		{"an intact chain verifies", func(e []Event) []Event { return e }, false},
		{"an edited action is detected", func(e []Event) []Event { e[2].Action = ActionAgentDisabled; return e }, true},
		{"edited details are detected", func(e []Event) []Event { e[1].Details = `{"i":2}`; return e }, true},
		{"an edited time is detected", func(e []Event) []Event { e[3].Time = e[3].Time.Add(time.Microsecond); return e }, true},
		{"a deleted middle row is detected", func(e []Event) []Event { return append(e[:2:2], e[3:]...) }, true},
		{"a rehashed edited row is detected by the next link", func(e []Event) []Event {
			e[1].Actor = "mallory"
			e[1].Hash = e[1].ComputeHash()
			return e
		}, true},
		{"swapped rows are detected", func(e []Event) []Event { e[1], e[2] = e[2], e[1]; return e }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.mutate(chain(5)))
			if tc.wantErr != (err != nil) {
				t.Fatalf("Verify() = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrChainBroken) {
				t.Fatalf("error %v does not wrap ErrChainBroken", err)
			}
		})
	}
}

func TestSealTruncatesToMicroseconds(t *testing.T) {
	e := chain(1)[0]
	if e.Time.Nanosecond()%1000 != 0 {
		t.Fatalf("time %v keeps sub-microsecond digits a store cannot round-trip", e.Time)
	}
}
