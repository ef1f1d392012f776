// Package pgtest gives tests a fresh PostgreSQL database of their own,
// dropped when the test ends. Without a server it skips the test loudly,
// except under CI=true, where a missing server is a failure.
package pgtest
