// Package keylock serializes work by key: a holder of a set of keys
// excludes every other holder of any overlapping set.
package keylock
