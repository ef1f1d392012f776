package vault

import (
	"fmt"
	"strconv"
	"strings"
)

// Scheme is the prefix every reference starts with.
const Scheme = "vault://"

// Limits of the reference grammar. They keep references short enough to show
// in errors and logs, and keep paths portable across providers.
const (
	// MaxRefLength caps the length of a whole reference in bytes.
	MaxRefLength = 512
	// MaxSegmentLength caps each path segment and the key.
	MaxSegmentLength = 128
	// MaxProviderLength caps the provider name.
	MaxProviderLength = 32
	// MaxPathSegments caps how many segments the path may have.
	MaxPathSegments = 16
	// MaxVersion caps a pinned version number.
	MaxVersion = 1<<31 - 1
)

// Ref is a parsed vault reference. The zero value is not a valid reference.
//
// The last segment is a version when it reads v<digits> (no leading zero) and
// at least a path and a key precede it; a key that itself looks like a
// version therefore needs an explicit version after it
// (vault://local/app/v2/v1).
type Ref struct {
	// Provider names the backend, e.g. "local".
	Provider string
	// Path is the slash-joined location of the secret inside the provider,
	// e.g. "db/creds".
	Path string
	// Key names the value inside Path, e.g. "password".
	Key string
	// Version pins a version; 0 means the current one.
	Version int
}

// String returns the canonical text of the reference, which ParseRef accepts
// and maps back to r.
func (r Ref) String() string {
	s := Scheme + r.Provider + "/" + r.Path + "/" + r.Key
	if r.Version > 0 {
		s += "/v" + strconv.Itoa(r.Version)
	}
	return s
}

// ParseRef parses s strictly as vault://<provider>/<path>/<key>[/vN].
//
// The provider is lowercase letters, digits and '-', starting with a letter.
// Path segments and the key are ASCII letters, digits, '.', '_' and '-', and
// may not be empty, "." or "..". A malformed s yields an error wrapping
// ErrMalformedRef that quotes s (shortened) and says what is wrong.
func ParseRef(s string) (Ref, error) {
	if len(s) > MaxRefLength {
		return Ref{}, malformed(s, fmt.Sprintf("longer than %d bytes", MaxRefLength))
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, malformed(s, "must start with "+Scheme)
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 3 {
		return Ref{}, malformed(s, "want vault://<provider>/<path>/<key>[/vN]")
	}
	provider := segs[0]
	if err := checkProvider(provider); err != nil {
		return Ref{}, malformed(s, err.Error())
	}
	segs = segs[1:]
	version := 0
	if len(segs) >= 3 {
		if v, ok, err := parseVersion(segs[len(segs)-1]); err != nil {
			return Ref{}, malformed(s, err.Error())
		} else if ok {
			version = v
			segs = segs[:len(segs)-1]
		}
	}
	path, key := segs[:len(segs)-1], segs[len(segs)-1]
	if len(path) > MaxPathSegments {
		return Ref{}, malformed(s, fmt.Sprintf("more than %d path segments", MaxPathSegments))
	}
	for _, seg := range path {
		if err := checkSegment(seg); err != nil {
			return Ref{}, malformed(s, "path "+err.Error())
		}
	}
	if err := checkSegment(key); err != nil {
		return Ref{}, malformed(s, "key "+err.Error())
	}
	return Ref{Provider: provider, Path: strings.Join(path, "/"), Key: key, Version: version}, nil
}

// ValidProviderName reports whether name may be used as a provider.
func ValidProviderName(name string) bool { return checkProvider(name) == nil }

func checkProvider(p string) error {
	if p == "" {
		return fmt.Errorf("provider is empty")
	}
	if len(p) > MaxProviderLength {
		return fmt.Errorf("provider longer than %d bytes", MaxProviderLength)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return fmt.Errorf("provider %q: want lowercase letters, digits and '-', starting with a letter", p)
		}
	}
	return nil
}

func checkSegment(seg string) error {
	switch seg {
	case "":
		return fmt.Errorf("has an empty segment")
	case ".", "..":
		return fmt.Errorf("segment %q is not allowed", seg)
	}
	if len(seg) > MaxSegmentLength {
		return fmt.Errorf("segment longer than %d bytes", MaxSegmentLength)
	}
	for i := 0; i < len(seg); i++ {
		if !segmentByte(seg[i]) {
			return fmt.Errorf("segment %q: want letters, digits, '.', '_' and '-'", shorten(seg))
		}
	}
	return nil
}

func segmentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// parseVersion reports whether seg is a version segment. A segment shaped
// like one but out of range is an error rather than a key, so that a typo
// never silently becomes a different secret.
func parseVersion(seg string) (int, bool, error) {
	digits, ok := strings.CutPrefix(seg, "v")
	if !ok || digits == "" {
		return 0, false, nil
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false, nil
		}
	}
	if digits[0] == '0' {
		return 0, false, fmt.Errorf("version %q: want v1, v2, ... without leading zeros", seg)
	}
	if len(digits) > 10 {
		return 0, false, fmt.Errorf("version %q is too large", seg)
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v > MaxVersion {
		return 0, false, fmt.Errorf("version %q is too large", seg)
	}
	return int(v), true, nil
}

func malformed(s, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrMalformedRef, shorten(s), reason)
}

// shorten keeps quoted input in errors readable.
func shorten(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
