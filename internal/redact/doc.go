// Package redact is Outpost's one redactor: everything an agent reports back
// (results, errors, logs) passes through a Redactor before it leaves the
// environment (DESIGN §5).
//
// A Redactor removes the values registered with AddSecret, including their
// common encodings (JSON string escapes, standard base64, whole or embedded
// in a longer base64 text), and drops the values of headers that carry
// credentials whatever their content.
package redact
