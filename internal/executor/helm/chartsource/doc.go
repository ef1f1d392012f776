// Package chartsource fetches a Helm chart archive (.tgz bytes) for the helm
// executor, from an HTTP(S) chart repository or an OCI registry, with
// credentials that live in memory only (DESIGN §5, §6).
//
// A Fetcher never writes to disk: the repository index is parsed from
// memory, the archive is returned as bytes, and Helm's registry client gets
// its credentials from the request alone, never logs in and never consults
// a credential store (see newRegistryClient for what it still opens). Every read is bounded (Options
// MaxIndexBytes and MaxChartBytes) and every request follows the caller's
// context.
//
// Credentials go only to the repository's own origin (scheme, host and
// port): a chart URL in an index, or a redirect, that points elsewhere is
// fetched without them. The one exception is the OCI token flow: a
// registry may name a token service on another host, which receives the
// credentials to issue a token, as the distribution spec provides (Docker
// Hub's auth.docker.io); oras refuses realms on private or loopback
// addresses and http realms for an https registry. Errors and logs never hold a password: repository
// URLs carrying userinfo are refused outright, URLs in messages carry no
// userinfo or query, and error text passes through the redactor.
package chartsource
