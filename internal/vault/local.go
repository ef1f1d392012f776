package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// EnvLocalPath is the environment variable the agent reads the local vault
// file's path from.
const EnvLocalPath = "OUTPOST_VAULT_PATH"

// LocalProviderName is the provider name the Local provider is registered
// under by convention: vault://local/<path>/<key>.
const LocalProviderName = "local"

// Local vault file limits.
const (
	// DefaultLocalMaxBytes is the default cap on the vault file's size.
	DefaultLocalMaxBytes = 1 << 20
	// MaxLocalMaxBytes is the largest cap LocalOptions accepts.
	MaxLocalMaxBytes = 16 << 20
)

// LocalOptions configures a Local provider.
type LocalOptions struct {
	// Path of the JSON vault file, shaped {"<path>": {"<key>": "<value>"}}.
	// Required.
	Path string
	// MaxBytes caps the file's size; 0 means DefaultLocalMaxBytes.
	MaxBytes int64
}

// Validate reports whether the options can build a Local provider.
func (o LocalOptions) Validate() error {
	if o.Path == "" {
		return fmt.Errorf("vault: local: path is required (set %s)", EnvLocalPath)
	}
	if o.MaxBytes < 0 || o.MaxBytes > MaxLocalMaxBytes {
		return fmt.Errorf("vault: local: max bytes %d: want 0 (default) up to %d", o.MaxBytes, MaxLocalMaxBytes)
	}
	return nil
}

// Local is a Provider backed by a JSON file on the agent's disk or a mounted
// volume. The file is read on first use and read again whenever its
// modification time, size or identity changes, so rotating the file (in
// place or by rename) takes effect without a restart. Versions are not
// supported. Local is safe for concurrent use.
type Local struct {
	path     string
	maxBytes int64

	mu     sync.Mutex
	stamp  fileStamp
	loaded bool
	data   map[string]map[string]string
}

// fileStamp identifies one version of the vault file on disk.
type fileStamp struct {
	info    os.FileInfo
	modTime time.Time
	size    int64
}

func (s fileStamp) same(fi os.FileInfo) bool {
	return s.info != nil && os.SameFile(s.info, fi) && s.modTime.Equal(fi.ModTime()) && s.size == fi.Size()
}

var _ Provider = (*Local)(nil)

// NewLocal returns a Local provider. The file is not read until the first
// lookup, so an agent can start before the file is mounted.
func NewLocal(opts LocalOptions) (*Local, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultLocalMaxBytes
	}
	return &Local{path: opts.Path, maxBytes: opts.MaxBytes}, nil
}

// Lookup returns the value at ref.Path and ref.Key in the vault file.
func (l *Local) Lookup(ctx context.Context, ref Ref) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if ref.Version != 0 {
		return "", &lookupError{
			msg:  "versions are not supported by the local provider; drop the /v" + fmt.Sprint(ref.Version) + " suffix",
			kind: ErrVersionUnsupported,
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refresh(); err != nil {
		return "", err
	}
	keys, ok := l.data[ref.Path]
	if !ok {
		return "", &lookupError{msg: fmt.Sprintf("path %q not found", ref.Path), kind: ErrNotFound}
	}
	v, ok := keys[ref.Key]
	if !ok {
		return "", &lookupError{msg: fmt.Sprintf("key %q not found in path %q", ref.Key, ref.Path), kind: ErrNotFound}
	}
	return v, nil
}

// refresh reloads the file when it changed since the last read. A failed
// reload keeps nothing: serving stale secrets after a rotation went wrong
// would hide the problem. Callers hold l.mu.
func (l *Local) refresh() error {
	fi, err := os.Stat(l.path)
	if err != nil {
		l.forget()
		return l.fileErr(err)
	}
	if l.loaded && l.stamp.same(fi) {
		return nil
	}
	data, stamp, err := l.read()
	if err != nil {
		l.forget()
		return err
	}
	l.data, l.stamp, l.loaded = data, stamp, true
	return nil
}

func (l *Local) forget() {
	l.data, l.stamp, l.loaded = nil, fileStamp{}, false
}

func (l *Local) read() (map[string]map[string]string, fileStamp, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fileStamp{}, l.fileErr(err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	// Stat the open file, not the path, so the stamp matches the bytes read
	// even if the file is renamed over meanwhile.
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, l.fileErr(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fileStamp{}, l.fileErr(errors.New("not a regular file"))
	}
	raw, err := io.ReadAll(io.LimitReader(f, l.maxBytes+1))
	if err != nil {
		return nil, fileStamp{}, l.fileErr(err)
	}
	if int64(len(raw)) > l.maxBytes {
		return nil, fileStamp{}, l.fileErr(fmt.Errorf("larger than %d bytes", l.maxBytes))
	}
	var data map[string]map[string]string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&data); err != nil {
		// Only the error's kind is kept: a type error could otherwise quote
		// part of the file.
		return nil, fileStamp{}, l.fileErr(errors.New(`want JSON shaped {"<path>": {"<key>": "<value>"}}`))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fileStamp{}, l.fileErr(errors.New("trailing data after the JSON object"))
	}
	return data, fileStamp{info: fi, modTime: fi.ModTime(), size: fi.Size()}, nil
}

func (l *Local) fileErr(err error) error {
	// The path is named once, below, not again by the os error.
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return &lookupError{msg: fmt.Sprintf("local vault file %s: %v", l.path, err), kind: ErrVaultFile}
}
