package hub

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"connectrpc.com/connect"
)

// Limits on operator input.
const (
	maxConflictKeys   = 16
	maxConflictKeyLen = 256
	maxArtifacts      = 32
	maxTaskIDLen      = 128
)

var (
	namePattern        = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	taskIDPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	conflictKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
)

// CheckName validates a tenant or environment name (a DNS label).
func CheckName(what, name string) error {
	if !namePattern.MatchString(name) {
		return invalid("%s name %q must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", what, name)
	}
	return nil
}

func checkTaskID(id string) error {
	if !taskIDPattern.MatchString(id) {
		return invalid("task id %q must be 1-%d characters of letters, digits, '.', '_', ':' or '-'", truncate(id, 64), maxTaskIDLen)
	}
	return nil
}

func checkConflictKeys(keys []string) error {
	if len(keys) > maxConflictKeys {
		return invalid("at most %d conflict keys, got %d", maxConflictKeys, len(keys))
	}
	for _, k := range keys {
		if len(k) > maxConflictKeyLen || !conflictKeyPattern.MatchString(k) {
			return invalid("conflict key %q must be at most %d characters of letters, digits, '.', '_', ':', '/' or '-'", truncate(k, 64), maxConflictKeyLen)
		}
	}
	return nil
}

// checkDigest validates "sha256:<64 lowercase hex>".
func checkDigest(d string) error {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return invalid("artifact digest %q must be sha256:<64 lowercase hex digits>", truncate(d, 80))
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return invalid("artifact digest %q is not hex", truncate(d, 80))
	}
	return nil
}

func checkJSONDocument(what string, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if !json.Valid(b) {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is not valid JSON", what))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
