// Package transport builds the one HTTP client Outpost uses to reach a hub:
// HTTPS only, TLS 1.2 or later, an optional custom CA bundle, HTTPS_PROXY
// honoured, HTTP/2 with pings so that a dead connection behind a proxy is
// noticed, and no overall timeout that would cut long-lived streams.
package transport
