package postgres

import (
	"errors"
	"log/slog"
	"regexp"
	"time"
)

// Options configure Open.
type Options struct {
	// URL is a PostgreSQL connection string (URL or key=value form).
	URL string
	// Schema, when set, holds every table; it is created if missing and set
	// as the connections' search_path.
	Schema string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for times a call does not carry (creation times of
	// rows, blobs); nil means time.Now.
	Now func() time.Time
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports what is wrong with o.
func (o Options) Validate() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("postgres: URL is required"))
	}
	if o.Schema != "" && !schemaName.MatchString(o.Schema) {
		errs = append(errs, errors.New("postgres: Schema must be a lower-case identifier (a-z, 0-9, _), at most 63 characters"))
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
	return o
}
