package transport

import (
	"net/url"
	"strings"
)

// Origin returns scheme://host:port of u, lower-cased, with the default
// port of http and https filled in. Two URLs with the same Origin are the
// same web origin: credentials meant for one may go to the other, and to
// nothing else.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}
