package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/outposthq/outpost/internal/seal"
)

// maxEnvFileBytes bounds an env file: the values' cap plus room for keys,
// quotes and comments.
const maxEnvFileBytes = 2 * seal.MaxValuesSize

// secretValues collects a secret's values from their sources (arguments,
// files, env files, stdin) and remembers where each key came from, so that
// a key given twice is named with both places. Errors name keys, files and
// line numbers, never a value. Wipe clears every value once sealed.
type secretValues struct {
	values map[string][]byte
	from   map[string]string // key → where it was given
	total  int
	stdin  bool // a value was read from stdin already
}

func newSecretValues() *secretValues {
	return &secretValues{values: map[string][]byte{}, from: map[string]string{}}
}

// add records key from source. The value is owned by s from here on.
func (s *secretValues) add(key string, value []byte, source string) error {
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		seal.Wipe(value)
		return fmt.Errorf("%s: key %q: %s", source, key, errs[0])
	}
	if prev, ok := s.from[key]; ok {
		seal.Wipe(value)
		return fmt.Errorf("key %q is given twice, in %s and in %s; keep one", key, prev, source)
	}
	if len(s.values) >= seal.MaxKeys {
		seal.Wipe(value)
		return fmt.Errorf("%s: more than %d keys in one secret", source, seal.MaxKeys)
	}
	s.total += len(value)
	if s.total > seal.MaxValuesSize {
		seal.Wipe(value)
		return fmt.Errorf("%s: the values add up to more than %d bytes, the most a Secret holds", source, seal.MaxValuesSize)
	}
	s.values[key], s.from[key] = value, source
	return nil
}

// keys returns the keys, sorted.
func (s *secretValues) keys() []string {
	out := make([]string, 0, len(s.values))
	for k := range s.values {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wipe zeroes every value.
func (s *secretValues) wipe() {
	for _, v := range s.values {
		seal.Wipe(v)
	}
}

// addArg reads one KEY=VALUE, KEY=@FILE or KEY=@- argument. A value that
// starts with "@" names a file ("-" is stdin); "@@" escapes a literal "@".
func (s *secretValues) addArg(arg string, stdin io.Reader) error {
	key, value, ok := strings.Cut(arg, "=")
	if !ok || key == "" {
		// The argument may be a value typed in the wrong place: show only
		// its length.
		return fmt.Errorf("argument of %d characters is not KEY=VALUE, KEY=@FILE or KEY=@-", len(arg))
	}
	source := "argument " + key
	switch {
	case strings.HasPrefix(value, "@@"):
		return s.add(key, []byte(value[1:]), source)
	case value == "@-":
		if s.stdin {
			return fmt.Errorf("%s: stdin is read once; only one key may be KEY=@-", source)
		}
		s.stdin = true
		b, err := readSecretBounded(stdin, seal.MaxValuesSize)
		if err != nil {
			return fmt.Errorf("%s: read stdin: %w", source, err)
		}
		return s.add(key, b, key+"=@-")
	case strings.HasPrefix(value, "@"):
		path := value[1:]
		b, err := readSecretFile(path, seal.MaxValuesSize)
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		return s.add(key, b, "file "+path)
	default:
		return s.add(key, []byte(value), source)
	}
}

// addEnvFile reads the KEY=VALUE lines of an env file.
func (s *secretValues) addEnvFile(path string) error {
	b, err := readSecretFile(path, maxEnvFileBytes)
	if err != nil {
		return fmt.Errorf("--from-env-file: %w", err)
	}
	defer seal.Wipe(b)
	return parseEnvFile(b, path, s.add)
}

// parseEnvFile parses an env file: one KEY=VALUE per line; blank lines and
// lines starting with # are skipped; an optional "export " prefix is
// dropped. An unquoted value is trimmed and ends at a " #" comment; a
// value in double quotes knows the escapes \n \r \t \" \\ and \$; a value
// in single quotes is literal. Quotes close on their own line. Each pair
// is passed to add with its source "path:line"; the value slices are
// fresh, not aliases of data.
func parseEnvFile(data []byte, path string, add func(key string, value []byte, source string) error) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		where := path + ":" + strconv.Itoa(n)
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		if rest, ok := bytes.CutPrefix(trimmed, []byte("export")); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			trimmed = bytes.TrimLeft(rest, " \t")
		}
		eq := bytes.IndexByte(trimmed, '=')
		if eq < 0 {
			return fmt.Errorf("%s: want KEY=VALUE", where)
		}
		key := string(bytes.TrimRight(trimmed[:eq], " \t"))
		if key == "" {
			return fmt.Errorf("%s: the key before = is empty", where)
		}
		value, err := envValue(bytes.TrimLeft(trimmed[eq+1:], " \t"))
		if err != nil {
			return fmt.Errorf("%s: key %s: %w", where, key, err)
		}
		if err := add(key, value, where); err != nil {
			return err
		}
	}
	return nil
}

var errUnterminatedQuote = errors.New("the quote is not closed on this line (values span one line; use \\n inside double quotes)")

// envValue decodes the value part of a line into a new slice.
func envValue(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return []byte{}, nil
	}
	switch raw[0] {
	case '\'':
		end := bytes.IndexByte(raw[1:], '\'')
		if end < 0 {
			return nil, errUnterminatedQuote
		}
		if err := afterQuote(raw[end+2:]); err != nil {
			return nil, err
		}
		return bytes.Clone(raw[1 : end+1]), nil
	case '"':
		out := make([]byte, 0, len(raw))
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch c {
			case '"':
				if err := afterQuote(raw[i+1:]); err != nil {
					seal.Wipe(out)
					return nil, err
				}
				return out, nil
			case '\\':
				if i+1 == len(raw) {
					seal.Wipe(out)
					return nil, errUnterminatedQuote
				}
				i++
				switch raw[i] {
				case 'n':
					out = append(out, '\n')
				case 'r':
					out = append(out, '\r')
				case 't':
					out = append(out, '\t')
				case '"', '\\', '$':
					out = append(out, raw[i])
				default:
					seal.Wipe(out)
					return nil, fmt.Errorf("unknown escape \\%c in double quotes (known: \\n \\r \\t \\\" \\\\ \\$)", raw[i])
				}
			default:
				out = append(out, c)
			}
		}
		seal.Wipe(out)
		return nil, errUnterminatedQuote
	}
	v := raw
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return bytes.Clone(bytes.TrimRight(v, " \t")), nil
}

// afterQuote allows only blanks and a comment after a closing quote.
func afterQuote(rest []byte) error {
	rest = bytes.TrimLeft(rest, " \t")
	if len(rest) > 0 && rest[0] != '#' {
		return errors.New("unexpected text after the closing quote")
	}
	return nil
}

// readSecretFile reads at most limit bytes of path, failing when there
// are more.
func readSecretFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file on purpose
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readSecretBounded(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// readSecretBounded reads r to its end, failing when it holds more than limit
// bytes. A refused read is wiped.
func readSecretBounded(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		seal.Wipe(b)
		return nil, err
	}
	if len(b) > limit {
		seal.Wipe(b)
		return nil, fmt.Errorf("larger than %d bytes, the most a Secret holds", limit)
	}
	return b, nil
}
