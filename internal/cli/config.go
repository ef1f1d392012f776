package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"sigs.k8s.io/yaml"
)

// Config is what `outpost login` stores: which hub to call, with which
// API token, trusting which CA bundle. It holds a credential, so the file
// is written 0600 and refused when others can read it.
type Config struct {
	Hub    string `json:"hub"`
	Token  string `json:"token"`
	CAFile string `json:"caFile,omitempty"`
}

// maxPrivateFileBytes bounds the config and state files read from disk.
const maxPrivateFileBytes = 1 << 20

// Environment variables the CLI reads.
const (
	envConfig = "OUTPOST_CONFIG"
	envHub    = "OUTPOST_HUB"
	envToken  = "OUTPOST_TOKEN"
)

// loginHint is appended to every "not logged in" error.
const loginHint = "run `outpost login --hub URL --token TOKEN`"

// configPath returns the config file to use: --config, then
// OUTPOST_CONFIG, then Options.ConfigPath, then the XDG location.
func (a *app) configPath() (string, error) {
	for _, p := range []string{a.configFlag, a.opts.Getenv(envConfig), a.opts.ConfigPath} {
		if p != "" {
			return p, nil
		}
	}
	if dir := a.opts.Getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "outpost", "config.yaml"), nil
	}
	if home := a.opts.Getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "outpost", "config.yaml"), nil
	}
	return "", errors.New("cannot find a config directory: set XDG_CONFIG_HOME or HOME, or pass --config")
}

// loadConfig reads the config file and applies OUTPOST_HUB,
// OUTPOST_TOKEN and --ca-file over it. A missing file is not an error as
// long as the environment names a hub and a token.
func (a *app) loadConfig() (Config, error) {
	path, err := a.configPath()
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	b, err := readPrivateFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Config{}, err
	default:
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s is not valid YAML (%w); fix it or %s again", path, err, loginHint)
		}
	}
	if v := a.opts.Getenv(envHub); v != "" {
		cfg.Hub = v
	}
	if v := a.opts.Getenv(envToken); v != "" {
		cfg.Token = v
	}
	if a.caFile != "" {
		cfg.CAFile = a.caFile
	}
	if cfg.Hub == "" || cfg.Token == "" {
		return Config{}, fmt.Errorf("%w (no hub URL and token in %s, %s or %s): %s", ErrNotLoggedIn, path, envHub, envToken, loginHint)
	}
	return cfg, nil
}

// saveConfig writes cfg to path, creating its directory 0700 and the file 0600.
func saveConfig(path string, cfg Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	return writePrivateFile(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// readPrivateFile reads a file that must be readable by its owner only.
// The mode is checked on the open file, so it is the file that is read.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // the path is the CLI's own config or state file
	if err != nil {
		return nil, err
	}
	defer closeQuietly(f)
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: %w; make it private with `chmod 600 %s` and try again",
			path, st.Mode().Perm(), ErrInsecureConfig, path)
	}
	if st.Size() > maxPrivateFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a config file may have", path, st.Size(), maxPrivateFileBytes)
	}
	return io.ReadAll(io.LimitReader(f, maxPrivateFileBytes))
}

// writePrivateFile replaces path atomically with a 0600 file whose content
// write produces; on error the old file, if any, stays as it was.
func writePrivateFile(path string, write func(io.Writer) error) (err error) {
	// CreateTemp makes the file 0600 before anything is written to it.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			closeQuietly(f)
			_ = os.Remove(f.Name()) // best effort: a stray temp file is harmless
		}
	}()
	if err := write(f); err != nil {
		return err // the caller's own error, already saying what failed
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// closeQuietly closes what was only read from, or is already being given
// up on after an error that matters more.
func closeQuietly(c io.Closer) { _ = c.Close() }
