package vault

import (
	"context"
	"fmt"
	"strings"
)

// placeholderOpen starts an embedded reference. It stops short of "//" so a
// typo such as ${vault:/db/pw} is reported instead of sent as text.
const placeholderOpen = "${vault:"

// ResolveFunc returns the value a reference stands for.
type ResolveFunc func(ctx context.Context, ref Ref) (string, error)

// part is a piece of a parsed template: literal text, or a reference.
type part struct {
	text  string
	ref   Ref
	isRef bool
}

// Refs returns the references s holds, in order of appearance, without
// resolving them. It accepts exactly what Expand accepts, so callers (the hub,
// the CLI) can reject a malformed spec before it reaches an agent.
func Refs(s string) ([]Ref, error) {
	parts, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, p := range parts {
		if p.isRef {
			refs = append(refs, p.ref)
		}
	}
	return refs, nil
}

// Expand returns s with its references replaced by what resolve returns.
//
// A value that is exactly a reference ("vault://local/db/creds/password")
// becomes the secret. Otherwise each ${vault://...} placeholder embedded in
// text is replaced ("Bearer ${vault://local/api/token}"). Resolved values are
// not expanded again. A value that starts with vault:// but is not a valid
// reference, or a placeholder that is unterminated or malformed, is an error
// wrapping ErrMalformedRef; no reference is resolved then. There is no escape
// for a literal "${vault:" in text.
//
// Every reference is parsed before the first is resolved, and resolution
// stops at the first error, which is returned as resolve gave it.
func Expand(ctx context.Context, s string, resolve ResolveFunc) (string, error) {
	parts, err := parseTemplate(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		if !p.isRef {
			b.WriteString(p.text)
			continue
		}
		v, err := resolve(ctx, p.ref)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func parseTemplate(s string) ([]part, error) {
	if trimmed := strings.TrimSpace(s); strings.HasPrefix(trimmed, Scheme) {
		if trimmed != s {
			return nil, malformed(s, "a whole-value reference may not have surrounding spaces")
		}
		ref, err := ParseRef(s)
		if err != nil {
			return nil, err
		}
		return []part{{ref: ref, isRef: true}}, nil
	}
	var parts []part
	rest, offset := s, 0
	for {
		i := strings.Index(rest, placeholderOpen)
		if i < 0 {
			if rest != "" {
				parts = append(parts, part{text: rest})
			}
			return parts, nil
		}
		if i > 0 {
			parts = append(parts, part{text: rest[:i]})
		}
		body := rest[i+2:]
		end := strings.IndexByte(body, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: placeholder at offset %d is not closed with '}'", ErrMalformedRef, offset+i)
		}
		ref, err := ParseRef(body[:end])
		if err != nil {
			return nil, fmt.Errorf("placeholder at offset %d: %w", offset+i, err)
		}
		parts = append(parts, part{ref: ref, isRef: true})
		consumed := i + 2 + end + 1
		rest, offset = rest[consumed:], offset+consumed
	}
}
