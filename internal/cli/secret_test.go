package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/seal"
)

// Values the tests set; none may reach the hub in plaintext or the output.
const (
	plainPassword = "hunter2-correct-horse"
	plainFile     = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-a-real-key\n-----END PRIVATE KEY-----\n"
	plainStdin    = "s3cr3t-from-a-pipe"
	plainEnvFile  = "token with spaces # and a hash"
)

// assertNowhere fails if any plaintext appears in what went over the wire
// (also base64-encoded, as JSON would carry bytes) or what the CLI showed.
func assertNowhere(t *testing.T, hub *secretHub, r result, plaintexts ...string) {
	t.Helper()
	wire := hub.wireBytes()
	for _, p := range plaintexts {
		for _, form := range []string{p, base64.StdEncoding.EncodeToString([]byte(p))} {
			if bytes.Contains(wire, []byte(form)) {
				t.Errorf("the value %q went to the hub in plaintext", p)
			}
		}
		if strings.Contains(r.stdout, p) || strings.Contains(r.stderr, p) || (r.err != nil && strings.Contains(r.err.Error(), p)) {
			t.Errorf("the CLI showed the value %q", p)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretSet(t *testing.T) {
	t.Run("values from arguments, a file, stdin and an env file arrive sealed to the newest active key and open intact", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		file := writeFile(t, h.dir, "tls.key", plainFile)
		envFile := writeFile(t, h.dir, "app.env", "# app settings\nexport API_TOKEN=\""+plainEnvFile+"\"\nREGION=eu-west-1 # where\n")
		h.stdin = plainStdin
		r := h.mustRun("secret", "set", "prod", "db", "--namespace", "shop", "--adopt",
			"password="+plainPassword, "tls.key=@"+file, "pipe=@-", "at=@@literal", "--from-env-file", envFile)

		sets, opened := hub.sentSets()
		if len(sets) != 1 {
			t.Fatalf("%d SetSecret calls, want 1", len(sets))
		}
		req := sets[0]
		if req.GetEnvironment() != "prod" || req.GetNamespace() != "shop" || req.GetName() != "db" || !req.GetAdopt() {
			t.Errorf("request = env %q namespace %q name %q adopt %v", req.GetEnvironment(), req.GetNamespace(), req.GetName(), req.GetAdopt())
		}
		wantKeys := []string{"API_TOKEN", "REGION", "at", "password", "pipe", "tls.key"}
		if !slices.Equal(req.GetKeys(), wantKeys) {
			t.Errorf("keys = %v, want %v", req.GetKeys(), wantKeys)
		}
		want := map[string]string{"password": plainPassword, "tls.key": plainFile, "pipe": plainStdin, "at": "@literal",
			"API_TOKEN": plainEnvFile, "REGION": "eu-west-1"}
		got := opened[0]
		if len(got) != len(want) {
			t.Errorf("opened %d keys, want %d", len(got), len(want))
		}
		for k, v := range want {
			if string(got[k]) != v {
				t.Errorf("%s opened to %q, want %q", k, got[k], v)
			}
		}
		if !strings.Contains(string(req.GetSealed()), `"keyVersion":2`) {
			t.Errorf("sealed to another key than version 2, the newest that is not retired: %s", req.GetSealed()[:80])
		}
		if !strings.Contains(r.stdout, "secret shop/db in acme/prod: version 3, 6 keys sealed to key version 2") {
			t.Errorf("stdout does not confirm the version and key:\n%s", r.stdout)
		}
		assertNowhere(t, hub, r, plainPassword, plainFile, plainStdin, plainEnvFile)
	})

	t.Run("--wait reports what the agent did", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "set", "acme/prod", "api", "-n", "shop", "token="+plainPassword, "--wait")
		if !strings.Contains(r.stderr, "secret shop/api: updated; 1 workload restarted") {
			t.Errorf("stderr does not show the outcome:\n%s", r.stderr)
		}
		assertNowhere(t, hub, r, plainPassword)
	})

	t.Run("-o json prints the hub's answer and no value", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "set", "prod", "api", "-n", "shop", "token="+plainPassword, "-o", "json")
		if !strings.Contains(r.stdout, `"keyVersion": 2`) || !strings.Contains(r.stdout, `"name": "api"`) {
			t.Errorf("stdout is not the SetSecret response:\n%s", r.stdout)
		}
		assertNowhere(t, hub, r, plainPassword)
	})
}

func TestSecretSetRefuses(t *testing.T) {
	big := strings.Repeat("x", seal.MaxValuesSize+1)
	tests := []struct {
		name  string
		setup func(h *harness, hub *secretHub) []string
		want  []string
	}{
		{"an environment without a registered key is named with what to do", func(h *harness, hub *secretHub) []string {
			return []string{"staging", "db", "-n", "shop", "password=" + plainPassword}
		}, []string{"no agent of environment acme/staging has registered a key yet; start an agent first"}},
		{"an environment whose keys are all retired has no key to seal to", func(h *harness, hub *secretHub) []string {
			hub.smu.Lock()
			hub.keys["prod"] = hub.keys["prod"][:1]
			hub.smu.Unlock()
			return []string{"prod", "db", "-n", "shop", "password=" + plainPassword}
		}, []string{"no agent of environment acme/prod has registered a key yet"}},
		{"a missing namespace is asked for", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "password=" + plainPassword}
		}, []string{"pass --namespace NS"}},
		{"an invalid namespace is refused", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "Shop_NS", "password=" + plainPassword}
		}, []string{`--namespace "Shop_NS"`}},
		{"an invalid secret name is refused", func(*harness, *secretHub) []string {
			return []string{"prod", "DB", "-n", "shop", "password=" + plainPassword}
		}, []string{`secret name "DB"`}},
		{"another tenant's environment is refused", func(*harness, *secretHub) []string {
			return []string{"globex/prod", "db", "-n", "shop", "password=" + plainPassword}
		}, []string{"not in your tenant acme"}},
		{"no values at all is refused", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "shop"}
		}, []string{"no values"}},
		{"an argument without = is refused without echoing it", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "shop", plainPassword}
		}, []string{"is not KEY=VALUE"}},
		{"an invalid key is named", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "shop", "pass word=" + plainPassword}
		}, []string{`key "pass word"`}},
		{"a key given as an argument and in an env file is named with both places", func(h *harness, _ *secretHub) []string {
			f := writeFile(t, h.dir, "dup.env", "A=1\npassword="+plainPassword+"\n")
			return []string{"prod", "db", "-n", "shop", "password=other", "--from-env-file", f}
		}, []string{`key "password" is given twice`, "argument password", "dup.env:2"}},
		{"a file larger than a Secret holds is refused", func(h *harness, _ *secretHub) []string {
			return []string{"prod", "db", "-n", "shop", "big=@" + writeFile(t, h.dir, "big", big)}
		}, []string{"larger than 1048576 bytes"}},
		{"values adding up to more than a Secret holds are refused", func(h *harness, _ *secretHub) []string {
			half := writeFile(t, h.dir, "half", big[:seal.MaxValuesSize/2+1])
			return []string{"prod", "db", "-n", "shop", "a=@" + half, "b=@" + half}
		}, []string{"add up to more than 1048576 bytes"}},
		{"a missing file is named", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "shop", "k=@/nonexistent/file"}
		}, []string{"/nonexistent/file"}},
		{"stdin is read for one key only", func(*harness, *secretHub) []string {
			return []string{"prod", "db", "-n", "shop", "a=@-", "b=@-"}
		}, []string{"only one key may be KEY=@-"}},
		{"a malformed env file names the line", func(h *harness, _ *secretHub) []string {
			f := writeFile(t, h.dir, "bad.env", "# ok\nA=1\nPASSWORD=\""+plainPassword+"\n")
			return []string{"prod", "db", "-n", "shop", "--from-env-file", f}
		}, []string{"bad.env:3", "key PASSWORD", "quote is not closed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, hub := newSecretHarness(t)
			h.login()
			args := tt.setup(h, hub)
			r := h.run(append([]string{"secret", "set"}, args...)...)
			assertErrorContains(t, r.err, tt.want...)
			if sets, _ := hub.sentSets(); len(sets) != 0 {
				t.Errorf("SetSecret was called %d times despite the error", len(sets))
			}
			assertNowhere(t, hub, r, plainPassword)
		})
	}
}

func TestSecretViews(t *testing.T) {
	t.Run("list shows keys and versions of each secret", func(t *testing.T) {
		h, _ := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "list", "prod")
		golden(t, "secret_list", r.stdout)
	})
	t.Run("history shows every version newest first", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "history", "prod", "db", "--namespace", "shop")
		golden(t, "secret_history", hub.normalizeFingerprints(r.stdout))
	})
	t.Run("history finds the namespace of a name that is unique in the environment", func(t *testing.T) {
		h, _ := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "history", "prod", "db")
		if !strings.Contains(r.stdout, "sec-2") {
			t.Errorf("history without --namespace did not show shop/db:\n%s", r.stdout)
		}
	})
	t.Run("keys shows the versions, their state and fingerprints", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "keys", "acme/prod")
		golden(t, "secret_keys", hub.normalizeFingerprints(r.stdout))
	})
	t.Run("keys of an environment without an agent says so", func(t *testing.T) {
		h, _ := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "keys", "staging")
		if !strings.Contains(r.stderr, "no agent of acme/staging has registered a key yet") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

// normalizeFingerprints replaces the generated keys' fingerprints and
// recipients, which change with every run, by their version.
func (h *secretHub) normalizeFingerprints(s string) string {
	for _, v := range h.keyring.Versions() {
		k, _ := h.keyring.Key(v)
		p := k.Public()
		// Placeholders of the same width keep the columns aligned.
		s = strings.ReplaceAll(s, p.Recipient, padTo("age1recipient-v"+strconv.Itoa(v), len(p.Recipient)))
		s = strings.ReplaceAll(s, p.Fingerprint, padTo("fingerprint-v"+strconv.Itoa(v), len(p.Fingerprint)))
	}
	return s
}

func padTo(s string, n int) string { return s + strings.Repeat("x", max(0, n-len(s))) }

func TestSecretDelete(t *testing.T) {
	t.Run("without --yes and without a terminal nothing is deleted", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.run("secret", "delete", "prod", "db", "-n", "shop")
		assertErrorContains(t, r.err, "pass --yes")
		if len(hub.sentDeletes()) != 0 {
			t.Fatal("DeleteSecret was called without confirmation")
		}
	})
	t.Run("a person at a terminal who does not answer yes deletes nothing", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		h.terminal, h.stdin = true, "n\n"
		r := h.run("secret", "delete", "prod", "db")
		assertErrorContains(t, r.err, "not confirmed")
		if !strings.Contains(r.stderr, "Delete Secret shop/db in acme/prod?") {
			t.Errorf("the prompt does not name the Secret: %q", r.stderr)
		}
		if len(hub.sentDeletes()) != 0 {
			t.Fatal("DeleteSecret was called without a yes")
		}
	})
	t.Run("a person at a terminal who answers yes deletes", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		h.terminal, h.stdin = true, "yes\n"
		h.mustRun("secret", "delete", "prod", "db")
		if len(hub.sentDeletes()) != 1 {
			t.Fatal("DeleteSecret was not called after a yes")
		}
	})
	t.Run("--yes --wait deletes and reports the agent's outcome", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		r := h.mustRun("secret", "delete", "prod", "db", "--yes", "--wait")
		if d := hub.sentDeletes(); len(d) != 1 || d[0].GetNamespace() != "shop" {
			t.Fatalf("deletes = %v, want shop/db", d)
		}
		if !strings.Contains(r.stdout, "secret shop/db in acme/prod: deleting") || !strings.Contains(r.stderr, "secret shop/db: deleted") {
			t.Errorf("output does not follow the deletion:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
	})
	t.Run("an unknown secret is named", func(t *testing.T) {
		h, _ := newSecretHarness(t)
		h.login()
		r := h.run("secret", "delete", "prod", "nope", "--yes")
		assertErrorContains(t, r.err, "secret nope: not found in acme/prod")
	})
	t.Run("a name in two namespaces needs --namespace", func(t *testing.T) {
		h, hub := newSecretHarness(t)
		h.login()
		h.mustRun("secret", "set", "prod", "db", "-n", "billing", "password="+plainPassword)
		r := h.run("secret", "delete", "prod", "db", "--yes")
		assertErrorContains(t, r.err, "billing and shop", "pass --namespace")
		if len(hub.sentDeletes()) != 0 {
			t.Fatal("DeleteSecret was called for an ambiguous name")
		}
	})
}

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{"plain pairs, comments and blank lines", "# c\n\nA=1\n  B = two  \n", map[string]string{"A": "1", "B": "two"}, ""},
		{"export prefixes are dropped", "export A=1\nexport\tB=2\n", map[string]string{"A": "1", "B": "2"}, ""},
		{"an unquoted value ends at a blank before #", "A=x#y\nB=x #y\n", map[string]string{"A": "x#y", "B": "x"}, ""},
		{"single quotes are literal", `A='a \n "b" # c'` + "\n", map[string]string{"A": `a \n "b" # c`}, ""},
		{"double quotes know escapes", `A="l1\nl2\t\"q\" \\ \$"` + "\n", map[string]string{"A": "l1\nl2\t\"q\" \\ $"}, ""},
		{"a comment may follow a closing quote", "A=\"x\" # note\n", map[string]string{"A": "x"}, ""},
		{"empty values are kept", "A=\nB=\"\"\nC=''\n", map[string]string{"A": "", "B": "", "C": ""}, ""},
		{"CRLF line ends and a BOM are accepted", "\xef\xbb\xbfA=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}, ""},
		{"the last line needs no newline", "A=1", map[string]string{"A": "1"}, ""},
		{"a = in the value is kept", "URL=https://x/?a=b\n", map[string]string{"URL": "https://x/?a=b"}, ""},
		{"a line without = names its number", "A=1\nnot a pair\n", nil, "f.env:2: want KEY=VALUE"},
		{"an empty key names its line", "=v\n", nil, "f.env:1: the key before = is empty"},
		{"an unterminated double quote names the line", "A=1\n\nB=\"open\n", nil, "f.env:3: key B: the quote is not closed"},
		{"an unterminated single quote names the line", "B='open\n", nil, "f.env:1: key B: the quote is not closed"},
		{"text after a closing quote is refused", "B=\"x\"y\n", nil, "f.env:1: key B: unexpected text after the closing quote"},
		{"an unknown escape is refused", `B="\q"` + "\n", nil, `f.env:1: key B: unknown escape \q`},
		{"a duplicate key names both lines", "A=1\nB=2\nA=3\n", nil, `key "A" is given twice, in f.env:1 and in f.env:3`},
		{"an invalid key names its line", "A B=1\n", nil, `f.env:1: key "A B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := newSecretValues()
			err := parseEnvFile([]byte(tt.in), "f.env", vals.add)
			if tt.wantErr != "" {
				assertErrorContains(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(vals.values) != len(tt.want) {
				t.Fatalf("got %d keys %v, want %v", len(vals.values), vals.keys(), tt.want)
			}
			for k, v := range tt.want {
				if got, ok := vals.values[k]; !ok || string(got) != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestSecretValuesAreWiped(t *testing.T) {
	vals := newSecretValues()
	if err := parseEnvFile([]byte("A=secret-a\nB=\"secret-b\"\n"), "f.env", vals.add); err != nil {
		t.Fatal(err)
	}
	kept := [][]byte{vals.values["A"], vals.values["B"]}
	vals.wipe()
	for _, v := range kept {
		if !bytes.Equal(v, make([]byte, len(v))) {
			t.Errorf("value %q survived wipe", v)
		}
	}
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add([]byte("A=1\nexport B=\"x\\ny\" # c\nC='z'\n"))
	f.Add([]byte("\xef\xbb\xbf=\n\"\n'"))
	f.Add([]byte("A=\"\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vals := newSecretValues()
		err := parseEnvFile(data, "f.env", vals.add)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.env:") && !strings.HasPrefix(err.Error(), "key ") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		total := 0
		for k, v := range vals.values {
			if k == "" || strings.ContainsAny(k, " =\n") {
				t.Fatalf("parsed invalid key %q", k)
			}
			total += len(v)
		}
		if total > len(data) {
			t.Fatalf("values of %d bytes from %d bytes of input", total, len(data))
		}
	})
}
