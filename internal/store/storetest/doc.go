// Package storetest is the conformance suite every store.Store
// implementation must pass. The sqlite and postgres packages run it against
// real databases; the suite injects every instant it depends on, so it
// never sleeps to make time pass.
package storetest
