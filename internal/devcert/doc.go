// Package devcert makes a throw-away certificate authority and a server
// certificate for local use (the demo, tests, a first look at the hub).
// Production hubs use certificates from a real CA, e.g. cert-manager.
package devcert
