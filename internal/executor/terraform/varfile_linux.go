package terraform

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// writeVarFile makes the variable file at path without writing its content
// to disk: the content lives in a sealed memfd that only this process holds,
// and path is a symbolic link to it through /proc, which the CLI reads like
// any file, as often as it needs. The returned function closes the memfd;
// the link then dangles. The memfd is close-on-exec, so no child process
// inherits it.
func writeVarFile(path string, content []byte) (func(), error) {
	fd, err := unix.MemfdCreate("outpost-tfvars", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "outpost-tfvars") //nolint:gosec // G115: MemfdCreate returned fd >= 0.
	closeFile := func() { _ = f.Close() }
	if _, err := f.Write(content); err != nil {
		closeFile()
		return nil, fmt.Errorf("memfd: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		closeFile()
		return nil, fmt.Errorf("memfd: seal: %w", err)
	}
	target := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd)
	if err := os.Symlink(target, path); err != nil {
		closeFile()
		return nil, fmt.Errorf("memfd: link: %w", err)
	}
	return closeFile, nil
}
