package redact

import (
	"regexp"
	"strings"
)

// Credentials are also recognised by their shape, registered or not:
//
//   - the credential after an HTTP auth scheme in free text ("Bearer x",
//     "basic x"), the scheme word kept: "Bearer [REDACTED]";
//   - JWT-shaped strings (JWS and JWE compact forms), which all start with
//     "eyJ", the base64url encoding of `{"`;
//   - Outpost's own API and bootstrap tokens (auth.NewToken);
//   - the value of an Authorization, Proxy-Authorization, Cookie or
//     Set-Cookie header written out in text: a line of an HTTP dump, a
//     JSON or Python key, a Go map as fmt prints http.Header. The scheme of
//     an authorization value is kept, as above.
//
// A scan for the fragment each starts with ("eyJ", "op?_", and "bearer",
// "basic", "cookie", "authorization" in any case) finds where to look; the
// regular expressions, anchored there, only confirm and measure.
var (
	// schemeCredentialRE is a scheme word and what follows it. A token68
	// (RFC 9110) may be written with JSON's escaped slash.
	schemeCredentialRE = regexp.MustCompile(`\A(?i:bearer|basic)[ \t]+((?:[A-Za-z0-9._~+/-]|\\/)+=*)`)
	jwtRE              = regexp.MustCompile(`\AeyJ[\w-]+\.[\w-]+\.[\w-]*(?:\.[\w-]+\.[\w-]+)?`)
	// headerRE is a credential header's name, maybe closing a quoted key,
	// and its colon; headerValues finds the value that follows.
	headerRE = regexp.MustCompile(`\A(?i:(?:proxy-)?authorization|set-cookie|cookie)(["']?)[ \t]*:[ \t]*`)
	// schemeRE is the scheme word that starts an authorization value.
	schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*[ \t]+`)
)

// outpostTokenLen is the length of auth.NewToken's output: a four-byte
// prefix and 20 random bytes in lower-case unpadded base32.
const outpostTokenLen = 4 + 32

// authParams are the parameter names a WWW-Authenticate challenge puts
// after its scheme ("Bearer realm=..."): they are not credentials.
var authParams = map[string]bool{
	"realm": true, "scope": true, "error": true, "error_description": true, "error_uri": true, "charset": true,
}

// mayHoldPattern reports whether s holds a fragment one of the patterns
// starts with, as scrubPatterns' scan would find it. One pass over s, no
// allocation: Bytes uses it to return clean text without copying it.
func mayHoldPattern[T string | []byte](s T) bool {
	for i := 0; i+3 <= len(s); i++ {
		switch s[i] | 0x20 {
		case 'e':
			if s[i] == 'e' && s[i+1] == 'y' && s[i+2] == 'J' {
				return true
			}
		case 'b':
			if hasFoldPrefix(s[i+1:], "earer") || hasFoldPrefix(s[i+1:], "asic") {
				return true
			}
		case 'c':
			if hasFoldPrefix(s[i+1:], "ookie") {
				return true
			}
		case 'a':
			if hasFoldPrefix(s[i+1:], "uthorization") {
				return true
			}
		case 'o':
			if s[i] == 'o' && s[i+1] == 'p' && i+3 < len(s) && s[i+3] == '_' {
				return true
			}
		}
	}
	return false
}

// hasFoldPrefix reports whether s starts with the lower-case ASCII word
// lower, ignoring case.
func hasFoldPrefix[T string | []byte](s T, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for i := range len(lower) {
		if s[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// scrubPatterns replaces the credentials recognised by their shape, in
// one pass from left to right. It is idempotent: what it writes never
// matches again.
func scrubPatterns(s string) string {
	var b strings.Builder
	last := 0
	replace := func(start, end int, with string) {
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString(with)
		last = end
	}
	for i := 0; i+3 <= len(s); i++ {
		switch s[i] | 0x20 {
		case 'e':
			if s[i] == 'e' && s[i+1] == 'y' && s[i+2] == 'J' {
				if m := jwtRE.FindStringIndex(s[i:]); m != nil {
					replace(i, i+m[1], Marker)
					i = last - 1
				}
			}
		case 'o':
			if isOutpostToken(s[i:]) {
				replace(i, i+outpostTokenLen, Marker)
				i = last - 1
			}
		case 'b':
			// After a replacement the text before i reads "...]".
			afterWord := i > 0 && i != last && isWordByte(s[i-1])
			if afterWord || !isSchemeWord(s[i+1:]) {
				continue
			}
			m := schemeCredentialRE.FindStringSubmatchIndex(s[i:])
			if m == nil {
				continue
			}
			cred := s[i+m[2] : i+m[3]]
			if name, ok := strings.CutSuffix(cred, "="); ok && authParams[strings.ToLower(name)] {
				continue
			}
			if looksLikeCredential(cred) {
				replace(i+m[2], i+m[3], Marker)
				i = last - 1
			}
		case 'c', 'a':
			start, ok := headerNameStart(s, i, last)
			if !ok {
				continue
			}
			m := headerRE.FindStringSubmatchIndex(s[start:])
			if m == nil {
				continue
			}
			quotedKey := start > 0 && isQuote(s[start-1]) && m[3] > m[2]
			auth := s[i]|0x20 == 'a'
			for _, span := range headerValues(s, start+m[1], quotedKey) {
				if v, ok := redactValue(s[span[0]:span[1]], auth); ok {
					replace(span[0], span[1], v)
				}
			}
			i = max(i, last-1)
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// headerNameStart reports whether s[i:] starts "cookie" or
// "authorization" as the name of a header (at the start of a line, after
// a non-word character, an opening quote or a JSON escape such as \n),
// and returns where the name starts, "Set-" or "Proxy-" included. The
// text before last has been replaced by a marker, which is not a word.
func headerNameStart(s string, i, last int) (int, bool) {
	start := i
	switch {
	case hasFoldPrefix(s[i+1:], "ookie"):
		if i >= 4 && hasFoldPrefix(s[i-4:], "set-") {
			start = i - 4
		}
	case hasFoldPrefix(s[i+1:], "uthorization"):
		if i >= 6 && hasFoldPrefix(s[i-6:], "proxy-") {
			start = i - 6
		}
	default:
		return 0, false
	}
	if start < last {
		start = i // the prefix was replaced
	}
	switch {
	case start == 0 || start == last || !isNameByte(s[start-1]):
		return start, true
	case start >= 2 && s[start-2] == '\\' && strings.IndexByte("nrt", s[start-1]) >= 0:
		return start, true
	}
	return 0, false
}

// isOutpostToken reports whether s starts with a token auth.NewToken made.
func isOutpostToken(s string) bool {
	if len(s) < outpostTokenLen || !strings.HasPrefix(s, "op") || (s[2] != 'a' && s[2] != 'b') || s[3] != '_' {
		return false
	}
	for _, c := range []byte(s[4:outpostTokenLen]) {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// isNameByte reports whether c can be part of a header name.
func isNameByte(c byte) bool { return isWordByte(c) || c == '-' }

// isSchemeWord reports whether s follows a "b" with the rest of "bearer"
// or "basic", in any case.
func isSchemeWord(s string) bool { return hasFoldPrefix(s, "earer") || hasFoldPrefix(s, "asic") }

func isQuote(c byte) bool { return c == '"' || c == '\'' }

// looksLikeCredential tells a credential after a scheme word from prose
// ("Bearer token", "basic auth", "Basic HTTP"): a word of letters shorter
// than 16 and not in mixed case is prose; anything with a digit or a
// symbol, long, or in mixed case is treated as a credential.
func looksLikeCredential(v string) bool {
	if len(v) >= 16 {
		return true
	}
	upperAfterFirst, lower := false, false
	for i := range len(v) {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upperAfterFirst = upperAfterFirst || i > 0
		default:
			return true
		}
	}
	return upperAfterFirst && lower
}

// headerValues returns the spans of the values that start at i: a quoted
// string, a bracketed list of quoted strings (JSON of http.Header), an
// unquoted bracketed list (fmt of http.Header) or, after an unquoted name,
// the rest of the line. After a quoted key only quoted values count: an
// unquoted one is JSON's null, a number or an object.
func headerValues(s string, i int, quotedKey bool) [][2]int {
	if i >= len(s) || strings.HasPrefix(s[i:], Marker) {
		return nil
	}
	switch c := s[i]; {
	case c == '"' || c == '\'':
		if end, ok := closingQuote(s, i); ok {
			return [][2]int{{i + 1, end}}
		}
		return [][2]int{{i + 1, lineEnd(s, i)}}
	case c == '[':
		j := skipSpace(s, i+1)
		if j < len(s) && (s[j] == '"' || s[j] == '\'') {
			var spans [][2]int
			for j < len(s) && (s[j] == '"' || s[j] == '\'') {
				end, ok := closingQuote(s, j)
				if !ok {
					return append(spans, [2]int{j + 1, lineEnd(s, j)})
				}
				spans = append(spans, [2]int{j + 1, end})
				j = skipSpace(s, end+1)
				if j >= len(s) || s[j] != ',' {
					break
				}
				j = skipSpace(s, j+1)
			}
			return spans
		}
		if quotedKey {
			return nil
		}
		return [][2]int{{i + 1, bracketEnd(s, i+1)}}
	case quotedKey:
		return nil
	}
	return [][2]int{{i, valueEnd(s, i)}}
}

// bracketEnd returns where the unquoted list item starting at i ends: at
// its closing bracket, a marker's bracket aside, or at the end of the line.
func bracketEnd(s string, i int) int {
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], Marker):
			i += len(Marker)
			continue
		case s[i] == ']' || s[i] == '\n' || s[i] == '\r':
			return i
		}
		i++
	}
	return i
}

// valueEnd returns where the unquoted header value starting at i ends: at
// the end of its line, written or escaped as in a JSON string, or at a
// double quote that closes the string the text is embedded in. A quoted
// parameter (Digest's username="u") is part of the value.
func valueEnd(s string, i int) int {
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\n', '\r':
			return j
		case '\\':
			if j+1 < len(s) && (s[j+1] == 'n' || s[j+1] == 'r') {
				return j
			}
			j++
		case '"':
			if j == i || s[j-1] != '=' {
				return j
			}
			end, ok := closingQuote(s, j)
			if !ok {
				return lineEnd(s, j)
			}
			j = end
		}
	}
	return len(s)
}

// closingQuote returns the index of the quote that closes the string
// opening at s[i], on the same line, skipping backslash escapes.
func closingQuote(s string, i int) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			return j, true
		case '\n', '\r':
			return 0, false
		}
	}
	return 0, false
}

func lineEnd(s string, i int) int {
	if k := strings.IndexAny(s[i:], "\r\n"); k >= 0 {
		return i + k
	}
	return len(s)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// redactValue returns a header value with its credential replaced, keeping
// the scheme of an authorization value; false when there is nothing left
// to replace.
func redactValue(v string, auth bool) (string, bool) {
	scheme := ""
	if auth {
		scheme = schemeRE.FindString(v)
	}
	rest := strings.TrimRight(v[len(scheme):], " \t")
	if rest == "" || strings.HasPrefix(rest, Marker) {
		return v, false
	}
	return scheme + Marker, true
}
