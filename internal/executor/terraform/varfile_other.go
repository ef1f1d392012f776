//go:build !linux

package terraform

import "errors"

// writeVarFile needs Linux's memfd: elsewhere the variables would have to
// be written to disk, which the executor never does.
func writeVarFile(string, []byte) (func(), error) {
	return nil, errors.New("input variables need Linux (memfd), to stay off the disk")
}
