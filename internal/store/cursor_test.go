package store

import (
	"errors"
	"testing"
)

func TestCursor(t *testing.T) {
	tests := []struct {
		name    string
		cursor  string
		want    int64
		invalid bool
	}{
		{name: "an encoded cursor decodes to its position", cursor: EncodeCursor(42), want: 42},
		{name: "the largest position round-trips", cursor: EncodeCursor(1<<63 - 1), want: 1<<63 - 1},
		{name: "garbage is rejected", cursor: "!!!", invalid: true},
		{name: "an empty cursor is rejected", cursor: "", invalid: true},
		{name: "a zero position is rejected", cursor: EncodeCursor(0), invalid: true},
		{name: "a negative position is rejected", cursor: EncodeCursor(-5), invalid: true},
		{name: "another prefix is rejected", cursor: "eDE6NDI", invalid: true},
		{name: "leading zeros are rejected", cursor: "dDE6MDQy", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCursor(tt.cursor)
			if tt.invalid {
				if !errors.Is(err, ErrInvalidCursor) {
					t.Fatalf("DecodeCursor(%q) = %d, %v; want ErrInvalidCursor", tt.cursor, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecodeCursor(%q) = %d, %v; want %d", tt.cursor, got, err, tt.want)
			}
		})
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(1))
	f.Add(EncodeCursor(1 << 40))
	f.Add("")
	f.Add("dDE6")
	f.Fuzz(func(t *testing.T, c string) {
		seq, err := DecodeCursor(c)
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("DecodeCursor(%q) error %v does not wrap ErrInvalidCursor", c, err)
			}
			return
		}
		if seq <= 0 {
			t.Fatalf("DecodeCursor(%q) = %d, want a positive position", c, seq)
		}
		if again, err := DecodeCursor(EncodeCursor(seq)); err != nil || again != seq {
			t.Fatalf("round trip of %d = %d, %v", seq, again, err)
		}
	})
}
