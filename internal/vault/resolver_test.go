package vault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeVault(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newLocalResolver(t *testing.T, content string) (*Resolver, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.json")
	writeVault(t, path, content)
	local, err := NewLocal(LocalOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(ResolverOptions{Providers: map[string]Provider{LocalProviderName: local}})
	if err != nil {
		t.Fatal(err)
	}
	return r, path
}

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	ref, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestResolverLocal(t *testing.T) {
	r, _ := newLocalResolver(t, `{"db/creds": {"password": "s3cr3t-pw", "user": "app"}}`)
	tests := []struct {
		name, ref, want string
		wantErr         error
		wantMsg         string
	}{
		{name: "a present key resolves to its value", ref: "vault://local/db/creds/password", want: "s3cr3t-pw"},
		{name: "a missing key names the reference, key and path", ref: "vault://local/db/creds/token", wantErr: ErrNotFound,
			wantMsg: `vault: vault://local/db/creds/token: key "token" not found in path "db/creds"`},
		{name: "a missing path names the reference and path", ref: "vault://local/db/other/password", wantErr: ErrNotFound,
			wantMsg: `vault: vault://local/db/other/password: path "db/other" not found`},
		{name: "a pinned version is refused by the local provider", ref: "vault://local/db/creds/password/v2", wantErr: ErrVersionUnsupported,
			wantMsg: "vault: vault://local/db/creds/password/v2: versions are not supported by the local provider"},
		{name: "an unknown provider lists the configured ones", ref: "vault://aws-sm/db/creds/password", wantErr: ErrUnknownProvider,
			wantMsg: `vault: vault://aws-sm/db/creds/password: unknown provider "aws-sm" (configured: local)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(t.Context(), mustRef(t, tt.ref))
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Fatalf("error = %q, want it to start with %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "s3cr3t-pw") {
				t.Fatalf("error %q leaks a value", err)
			}
			if !IsPermanent(err) {
				t.Fatalf("IsPermanent(%v) = false", err)
			}
		})
	}
}

func TestLocalPicksUpRotation(t *testing.T) {
	ref := mustRef(t, "vault://local/api/token")

	t.Run("a file renamed over the old one is read again", func(t *testing.T) {
		r, path := newLocalResolver(t, `{"api": {"token": "old-token"}}`)
		if got, err := r.Resolve(t.Context(), ref); err != nil || got != "old-token" {
			t.Fatalf("before rotation: %q, %v", got, err)
		}
		writeVault(t, path, `{"api": {"token": "new-token"}}`)
		if got, err := r.Resolve(t.Context(), ref); err != nil || got != "new-token" {
			t.Fatalf("after rotation: %q, %v", got, err)
		}
	})

	t.Run("a file rewritten in place with a new mtime is read again", func(t *testing.T) {
		r, path := newLocalResolver(t, `{"api": {"token": "aaaa-token"}}`)
		if got, err := r.Resolve(t.Context(), ref); err != nil || got != "aaaa-token" {
			t.Fatalf("before rotation: %q, %v", got, err)
		}
		// Same size, so only the modification time tells the versions apart.
		if err := os.WriteFile(path, []byte(`{"api": {"token": "bbbb-token"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Resolve(t.Context(), ref); err != nil || got != "bbbb-token" {
			t.Fatalf("after rotation: %q, %v", got, err)
		}
	})

	t.Run("a removed file fails instead of serving stale values", func(t *testing.T) {
		r, path := newLocalResolver(t, `{"api": {"token": "old-token"}}`)
		if _, err := r.Resolve(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, err := r.Resolve(t.Context(), ref)
		if !errors.Is(err, ErrVaultFile) || IsPermanent(err) {
			t.Fatalf("error = %v, want a transient ErrVaultFile", err)
		}
	})
}

func TestLocalRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name, content, reason string
		maxBytes              int64
	}{
		{name: "a file over the size cap is refused", content: `{"a": {"b": "` + strings.Repeat("x", 100) + `"}}`, maxBytes: 64, reason: "larger than 64 bytes"},
		{name: "a file that is not JSON is refused", content: `not json`, reason: "want JSON shaped"},
		{name: "a file with non-string values is refused without quoting them", content: `{"a": {"b": 12345678}}`, reason: "want JSON shaped"},
		{name: "a file with trailing data is refused", content: `{"a": {"b": "c"}} {}`, reason: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vault.json")
			writeVault(t, path, tt.content)
			local, err := NewLocal(LocalOptions{Path: path, MaxBytes: tt.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			_, err = local.Lookup(t.Context(), mustRef(t, "vault://local/a/b"))
			if !errors.Is(err, ErrVaultFile) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error = %v, want ErrVaultFile saying %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), "12345678") {
				t.Fatalf("error %q quotes the file", err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	if _, err := NewLocal(LocalOptions{}); err == nil || !strings.Contains(err.Error(), EnvLocalPath) {
		t.Fatalf("NewLocal without a path: %v, want an error naming %s", err, EnvLocalPath)
	}
	if _, err := NewLocal(LocalOptions{Path: "x", MaxBytes: MaxLocalMaxBytes + 1}); err == nil {
		t.Fatal("NewLocal accepted a cap above the maximum")
	}
	if _, err := NewResolver(ResolverOptions{Providers: map[string]Provider{"Bad_Name": &Local{}}}); err == nil {
		t.Fatal("NewResolver accepted an invalid provider name")
	}
	if _, err := NewResolver(ResolverOptions{Providers: map[string]Provider{"local": nil}}); err == nil {
		t.Fatal("NewResolver accepted a nil provider")
	}
}
