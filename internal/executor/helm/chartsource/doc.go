// Package chartsource fetches a Helm chart archive (.tgz bytes) for the helm
// executor, from an HTTP(S) chart repository or an OCI registry, with
// credentials that live in memory only (DESIGN §5, §6).
//
// A Fetcher never writes to disk: the repository index is parsed from
// memory, the OCI client is built without a credentials file or login, and
// the archive is returned as bytes. Every read is bounded (Options
// MaxIndexBytes and MaxChartBytes) and every request follows the caller's
// context.
//
// Credentials go only to the repository's own origin (scheme, host and
// port): a chart URL in an index, or a redirect, that points elsewhere is
// fetched without them. Errors and logs never hold a password: repository
// URLs carrying userinfo are refused outright, URLs in messages carry no
// userinfo or query, and error text passes through the redactor.
package chartsource
