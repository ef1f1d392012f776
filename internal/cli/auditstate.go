package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// auditHeadsFile sits next to the config file and remembers, per hub and
// tenant, the last audit event a verification accepted.
const auditHeadsFile = "audit-heads.json"

// auditHead is an event a verification accepted: the chain must still
// contain it, unchanged, the next time it is verified.
type auditHead struct {
	Seq        int64     `json:"seq"`
	Hash       string    `json:"hash"`
	VerifiedAt time.Time `json:"verifiedAt"`
}

// auditHeads is the content of the state file.
type auditHeads struct {
	Heads map[string]auditHead `json:"heads"`
}

func auditHeadKey(hub, tenant string) string { return hub + " " + tenant }

func (a *app) auditHeadsPath() (string, error) {
	cfg, err := a.configPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(cfg), auditHeadsFile), nil
}

// loadAuditHead returns the head remembered for hub and tenant, or nil.
func (a *app) loadAuditHead(hub, tenant string) (*auditHead, error) {
	path, err := a.auditHeadsPath()
	if err != nil {
		return nil, err
	}
	heads, err := readAuditHeads(path)
	if err != nil {
		return nil, err
	}
	h, ok := heads.Heads[auditHeadKey(hub, tenant)]
	if !ok {
		return nil, nil
	}
	return &h, nil
}

// saveAuditHead remembers head for hub and tenant, keeping other entries.
func (a *app) saveAuditHead(hub, tenant string, head auditHead) error {
	path, err := a.auditHeadsPath()
	if err != nil {
		return err
	}
	heads, err := readAuditHeads(path)
	if err != nil {
		return err
	}
	heads.Heads[auditHeadKey(hub, tenant)] = head
	b, err := json.MarshalIndent(heads, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	return writePrivateFile(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

func readAuditHeads(path string) (auditHeads, error) {
	heads := auditHeads{Heads: map[string]auditHead{}}
	b, err := readPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return heads, nil
	}
	if err != nil {
		return heads, err
	}
	if err := json.Unmarshal(b, &heads); err != nil {
		return heads, fmt.Errorf("%s is damaged (%w): the remembered audit heads cannot be checked; inspect or remove it", path, err)
	}
	if heads.Heads == nil {
		heads.Heads = map[string]auditHead{}
	}
	return heads, nil
}
