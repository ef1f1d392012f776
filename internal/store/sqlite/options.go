package sqlite

import (
	"errors"
	"log/slog"
	"strings"
	"time"
)

// Options configure Open.
type Options struct {
	// Path is the database file; it is created if missing.
	Path string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for times a call does not carry (creation times of
	// rows, blobs); nil means time.Now.
	Now func() time.Time
	// BusyTimeout is how long a connection waits for a lock held by another
	// process on the same file; 0 means 10s.
	BusyTimeout time.Duration
	// ReadConns bounds the read pool; 0 means 4.
	ReadConns int
	// MaxBatch bounds how many concurrent writes are committed as one
	// transaction (group commit); 0 means 128, 1 commits each write alone.
	MaxBatch int
}

// Validate reports what is wrong with o.
func (o Options) Validate() error {
	var errs []error
	if o.Path == "" {
		errs = append(errs, errors.New("sqlite: Path is required"))
	}
	if strings.ContainsAny(o.Path, "?#") {
		errs = append(errs, errors.New("sqlite: Path must not contain '?' or '#'"))
	}
	if o.BusyTimeout < 0 {
		errs = append(errs, errors.New("sqlite: BusyTimeout must not be negative"))
	}
	if o.ReadConns < 0 {
		errs = append(errs, errors.New("sqlite: ReadConns must not be negative"))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, errors.New("sqlite: MaxBatch must not be negative"))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if o.ReadConns == 0 {
		o.ReadConns = 4
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	return o
}
