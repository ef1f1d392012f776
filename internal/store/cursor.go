package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidCursor is returned for a listing cursor the store did not hand
// out.
var ErrInvalidCursor = errors.New("invalid cursor")

const (
	cursorPrefix = "t1:"
	// maxCursorLen bounds what DecodeCursor looks at, cursors come from
	// clients.
	maxCursorLen = 64
)

// EncodeCursor returns the opaque cursor that continues a newest-first
// listing below the row with sequence number seq.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor returns the sequence number of a cursor made by EncodeCursor,
// or an error wrapping ErrInvalidCursor.
func DecodeCursor(c string) (int64, error) {
	if len(c) > maxCursorLen {
		return 0, fmt.Errorf("decode cursor: %w: too long", ErrInvalidCursor)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, fmt.Errorf("decode cursor: %w: not base64url", ErrInvalidCursor)
	}
	digits, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, fmt.Errorf("decode cursor: %w: unknown version", ErrInvalidCursor)
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq <= 0 || strconv.FormatInt(seq, 10) != digits {
		return 0, fmt.Errorf("decode cursor: %w: bad position", ErrInvalidCursor)
	}
	return seq, nil
}
