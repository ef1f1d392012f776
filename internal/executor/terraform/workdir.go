package terraform

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/taskspec"
)

// workDirPrefix starts the name of a run's private directory under
// Options.WorkRoot.
const workDirPrefix = "outpost-tf-"

// staleWorkDir is the age past which a run's directory belongs to no
// running run: the longest task timeout and the state recovery after it.
const staleWorkDir = time.Duration(taskspec.MaxTerraformTimeoutSeconds)*time.Second + recoverTimeout

// sweepWorkRoot removes the directories that killed runs left under root
// (a run removes its own when it ends): they may hold plan files with
// secrets. It returns how many it removed.
func sweepWorkRoot(root string, now time.Time, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0, fmt.Errorf("terraform: sweep %s: %w", root, err)
	}
	removed := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), workDirPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleWorkDir {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			log.Warn("terraform: removing a killed run's working directory failed", "error", err.Error())
			continue
		}
		removed++
	}
	return removed, nil
}
