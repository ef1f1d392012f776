package terraform

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// MemoryBacked reports whether dir lies on a file system held in memory
// (tmpfs or ramfs), where the plan files of runs, which hold the values of
// sensitive variables, never reach a disk. Options.WorkRoot should be.
func MemoryBacked(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("terraform: statfs %s: %w", dir, err)
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC, nil
}
