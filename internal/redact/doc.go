// Package redact is Outpost's one redactor: everything an agent reports back
// (results, errors, logs) passes through a Redactor before it leaves the
// environment (DESIGN §5).
//
// A Redactor removes the values registered with AddSecret, including their
// common encodings (JSON string escapes, standard base64, whole or embedded
// in a longer base64 text), and drops the values of headers that carry
// credentials whatever their content. It also removes, registered or not,
// what has the shape of a credential: bearer and basic credentials in
// free text, JWTs, Outpost's own tokens, and the values of Authorization,
// Proxy-Authorization, Cookie and Set-Cookie headers written out in text.
//
// NewHandler wraps a slog.Handler so that logs pass through a Redactor
// too, and NewChild makes a Redactor that also tells a parent every
// secret, so a process-wide Redactor for logs learns what each task's
// Redactor is told.
package redact
