package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  func(h *harness) []string
		stdin string
		// wantErr is empty when login must succeed.
		wantErr []string
	}{{
		name: "login with a valid token writes the config",
		args: func(h *harness) []string {
			return []string{"--hub", h.url, "--token", fakeToken, "--ca-file", h.caFile}
		},
	}, {
		name:  "login reads the token from stdin when given -",
		args:  func(h *harness) []string { return []string{"--hub", h.url, "--token", "-", "--ca-file", h.caFile} },
		stdin: fakeToken + "\n",
	}, {
		name:    "login with a token the hub refuses writes nothing and says to log in with a valid one",
		args:    func(h *harness) []string { return []string{"--hub", h.url, "--token", "wrong", "--ca-file", h.caFile} },
		wantErr: []string{"invalid API token", "outpost login --hub URL --token TOKEN"},
	}, {
		name: "login to an http:// hub is refused before any call",
		args: func(h *harness) []string {
			return []string{"--hub", strings.Replace(h.url, "https://", "http://", 1), "--token", fakeToken}
		},
		wantErr: []string{"must use https"},
	}, {
		name:    "login without the hub's CA says to pass --ca-file",
		args:    func(h *harness) []string { return []string{"--hub", h.url, "--token", fakeToken} },
		wantErr: []string{"not signed by a trusted CA", "--ca-file"},
	}, {
		name:    "login with an empty stdin token says what is missing",
		args:    func(h *harness) []string { return []string{"--hub", h.url, "--token", "-", "--ca-file", h.caFile} },
		wantErr: []string{"stdin was empty"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.stdin = tt.stdin
			r := h.run(append([]string{"login"}, tt.args(h)...)...)
			if len(tt.wantErr) > 0 {
				assertErrorContains(t, r.err, tt.wantErr...)
				if _, err := os.Stat(h.configPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed login left a config file behind (stat: %v)", err)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("login: %v", r.err)
			}
			st, err := os.Stat(h.configPath)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != 0o600 {
				t.Errorf("config mode = %04o, want 0600", got)
			}
			dst, err := os.Stat(filepath.Dir(h.configPath))
			if err != nil {
				t.Fatal(err)
			}
			if got := dst.Mode().Perm(); got != 0o700 {
				t.Errorf("config directory mode = %04o, want 0700", got)
			}
			b, err := os.ReadFile(h.configPath)
			if err != nil {
				t.Fatal(err)
			}
			var cfg Config
			if err := yaml.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if want := (Config{Hub: h.url, Token: fakeToken, CAFile: h.caFile}); cfg != want {
				t.Errorf("config = %+v, want %+v", cfg, want)
			}
			if !strings.Contains(r.stdout, fakeTenant) || !strings.Contains(r.stdout, fakeTokenName) {
				t.Errorf("login output does not name tenant and token:\n%s", r.stdout)
			}
			// The stored config now works on its own.
			h.mustRun("env", "list")
		})
	}
}

func TestConfigIsPrivate(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("a config with mode %04o is refused with a chmod hint", mode), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			if err := os.Chmod(h.configPath, mode); err != nil {
				t.Fatal(err)
			}
			r := h.run("env", "list")
			if !errors.Is(r.err, ErrInsecureConfig) {
				t.Fatalf("err = %v, want ErrInsecureConfig", r.err)
			}
			assertErrorContains(t, r.err, "chmod 600 "+h.configPath)
		})
	}
	t.Run("logging in again replaces a readable config with a private one", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		if err := os.Chmod(h.configPath, 0o644); err != nil { //nolint:gosec // the unsafe mode under test
			t.Fatal(err)
		}
		h.login()
		st, err := os.Stat(h.configPath)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode after login = %04o, want 0600", st.Mode().Perm())
		}
	})
}

func TestConfigSources(t *testing.T) {
	t.Parallel()
	t.Run("a command before login says how to log in", func(t *testing.T) {
		t.Parallel()
		r := newHarness(t).run("env", "list")
		if !errors.Is(r.err, ErrNotLoggedIn) {
			t.Fatalf("err = %v, want ErrNotLoggedIn", r.err)
		}
		assertErrorContains(t, r.err, "outpost login --hub URL --token TOKEN")
	})
	t.Run("OUTPOST_HUB and OUTPOST_TOKEN work without a config file", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.env[envHub], h.env[envToken] = h.url, fakeToken
		h.mustRun("env", "list", "--ca-file", h.caFile)
	})
	t.Run("OUTPOST_TOKEN overrides the token in the file", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.env[envToken] = "revoked"
		assertErrorContains(t, h.run("env", "list").err, "invalid API token")
	})
	t.Run("OUTPOST_CONFIG chooses another file and --config beats it", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.env[envConfig] = filepath.Join(h.dir, "missing.yaml")
		if r := h.run("env", "list"); !errors.Is(r.err, ErrNotLoggedIn) {
			t.Fatalf("with OUTPOST_CONFIG pointing nowhere: err = %v, want ErrNotLoggedIn", r.err)
		}
		h.mustRun("env", "list", "--config", h.configPath)
	})
	t.Run("an http:// hub from the environment is refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.env[envHub] = strings.Replace(h.url, "https://", "http://", 1)
		assertErrorContains(t, h.run("task", "list").err, "must use https")
	})
	t.Run("the default config lives under XDG_CONFIG_HOME", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.configPath = ""
		h.env["XDG_CONFIG_HOME"] = filepath.Join(h.dir, "xdg")
		h.login()
		if _, err := os.Stat(filepath.Join(h.dir, "xdg", "outpost", "config.yaml")); err != nil {
			t.Fatal(err)
		}
	})
}
