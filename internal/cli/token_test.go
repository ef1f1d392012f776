package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shellWords splits s the way a POSIX shell splits a simple command:
// blanks separate words, a backslash-newline joins lines, a backslash
// quotes the next character, single quotes quote everything up to the
// next one. It is enough for what shellQuote emits and refuses the rest,
// so that a paste a shell would read differently fails the test.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated single quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("\"$`|&;<>()*?[]#~{}!", c) >= 0:
			t.Fatalf("unquoted %q in %q: a shell would not read it literally", c, s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func TestHelmInstallCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chart  string
		hub    string
		caFile string
		env    string
		token  string
		want   []string
	}{
		{
			name: "a hub with a public certificate gets no CA bundle", chart: defaultAgentChart,
			hub: "https://hub.example.com", env: "acme/prod", token: "obt_0123",
			want: []string{"helm", "install", "outpost-agent", "oci://ghcr.io/outposthq/charts/outpost-agent",
				"--namespace", "outpost-system", "--create-namespace",
				"--set", "hub.url=https://hub.example.com",
				"--set", "environment=acme/prod",
				"--set", "bootstrapToken.value=obt_0123"},
		},
		{
			name: "a self-signed hub passes its CA file", chart: "./deploy/charts/outpost-agent",
			hub: "https://hub.internal:8443", caFile: "/etc/outpost/hub-ca.pem", env: "acme/staging", token: "obt_4567",
			want: []string{"helm", "install", "outpost-agent", "./deploy/charts/outpost-agent",
				"--namespace", "outpost-system", "--create-namespace",
				"--set", "hub.url=https://hub.internal:8443",
				"--set-file", "hub.caBundle=/etc/outpost/hub-ca.pem",
				"--set", "environment=acme/staging",
				"--set", "bootstrapToken.value=obt_4567"},
		},
		{
			name: "a CA path with spaces, quotes and a comma survives the shell and helm", chart: defaultAgentChart,
			hub: "https://hub.test", caFile: `/home/o'neil/my certs,v2/ca.pem`, env: "acme/prod", token: "obt_89",
			want: []string{"helm", "install", "outpost-agent", "oci://ghcr.io/outposthq/charts/outpost-agent",
				"--namespace", "outpost-system", "--create-namespace",
				"--set", "hub.url=https://hub.test",
				"--set-file", `hub.caBundle=/home/o'neil/my certs\,v2/ca.pem`,
				"--set", "environment=acme/prod",
				"--set", "bootstrapToken.value=obt_89"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := shellWords(t, helmInstallCommand(tt.chart, tt.hub, tt.caFile, tt.env, tt.token))
			if !slices.Equal(got, tt.want) {
				t.Errorf("the shell reads\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"a plain word stays bare", "hub.url=https://hub.test:8443/x", "hub.url=https://hub.test:8443/x"},
		{"an empty word is quoted", "", "''"},
		{"a space is quoted", "a b", "'a b'"},
		{"a single quote is closed, escaped and reopened", "o'neil", `'o'\''neil'`},
		{"a dollar sign is quoted", "$HOME", "'$HOME'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := shellQuote(tt.in)
			if got != tt.want {
				t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if words := shellWords(t, got); len(words) != 1 || words[0] != tt.in {
				t.Errorf("the shell reads %s as %q, want the one word %q", got, words, tt.in)
			}
		})
	}
}

// TestTokenCreatePrintsHelmInstall runs the command against the fake hub:
// the helm install it prints carries this token, hub and environment, the
// login's CA file and the --chart asked for, and pastes into a shell as
// those words; -o json leaves the token message alone.
func TestTokenCreatePrintsHelmInstall(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	caFile := filepath.Join(h.dir, "o'neil certs", "hub ca.pem")
	if err := os.MkdirAll(filepath.Dir(caFile), 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(h.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	h.mustRun("login", "--hub", h.url, "--token", fakeToken, "--ca-file", caFile)

	r := h.mustRun("token", "create", "--env", "prod", "--chart", "./deploy/charts/outpost-agent")
	_, cmd, ok := strings.Cut(r.stdout, "Or install the agent chart in a cluster with:\n\n")
	if !ok {
		t.Fatalf("no helm install in:\n%s", r.stdout)
	}
	want := []string{"helm", "install", "outpost-agent", "./deploy/charts/outpost-agent",
		"--namespace", "outpost-system", "--create-namespace",
		"--set", "hub.url=" + h.url,
		"--set-file", "hub.caBundle=" + caFile,
		"--set", "environment=acme/prod",
		"--set", "bootstrapToken.value=obt_0123456789abcdef"}
	if got := shellWords(t, cmd); !slices.Equal(got, want) {
		t.Errorf("the shell reads\n%q\nwant\n%q", got, want)
	}
	_, enroll, _ := strings.Cut(r.stdout, "Enroll an agent with:\n\n")
	enroll, _, _ = strings.Cut(enroll, "\n")
	wantEnroll := []string{"outpost-agent", "--hub", h.url, "--bootstrap-token", "obt_0123456789abcdef", "--environment", "acme/prod", "--ca-file", caFile}
	if got := shellWords(t, enroll); !slices.Equal(got, wantEnroll) {
		t.Errorf("the enroll line reads\n%q\nwant\n%q (a self-signed hub's CA included)", got, wantEnroll)
	}

	js := h.mustRun("token", "create", "--env", "prod", "-o", "json").stdout
	if strings.Contains(js, "helm") || !strings.Contains(js, `"token": "obt_0123456789abcdef"`) {
		t.Errorf("-o json should print the token message alone:\n%s", js)
	}
}
