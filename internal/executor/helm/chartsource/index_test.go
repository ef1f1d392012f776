package chartsource

import (
	"errors"
	"testing"

	repo "helm.sh/helm/v4/pkg/repo/v1"
)

const sampleIndex = `apiVersion: v1
entries:
  web:
  - apiVersion: v2
    name: web
    version: 1.0.0
    urls: [charts/web-1.0.0.tgz]
    digest: abc
  - apiVersion: v2
    name: web
    version: 1.10.0
    urls: [charts/web-1.10.0.tgz]
  - apiVersion: v2
    name: web
    version: not a version
    urls: [charts/web-bad.tgz]
  -
generated: "2026-01-01T00:00:00Z"
`

func TestParseIndex(t *testing.T) {
	t.Run("entries are sorted newest first and invalid ones dropped", func(t *testing.T) {
		idx, err := parseIndex([]byte(sampleIndex))
		if err != nil {
			t.Fatal(err)
		}
		web := idx.Entries["web"]
		if len(web) != 2 || web[0].Version != "1.10.0" || web[1].Version != "1.0.0" {
			t.Fatalf("entries %v", web)
		}
		if web[1].Digest != "abc" || web[1].URLs[0] != "charts/web-1.0.0.tgz" {
			t.Fatalf("entry %+v", web[1])
		}
	})
	for _, tc := range []struct {
		name string
		data string
		want error
	}{
		{"an empty index is refused", "", repo.ErrEmptyIndexYaml},
		{"an index without apiVersion is refused", "entries: {}\n", repo.ErrNoAPIVersion},
		{"a JSON index without apiVersion is refused", `{"entries":{}}`, repo.ErrNoAPIVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseIndex([]byte(tc.data)); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("unknown fields are refused, as Helm's strict loader does", func(t *testing.T) {
		if _, err := parseIndex([]byte("apiVersion: v1\nentries: {}\nsurprise: 1\n")); err == nil {
			t.Fatal("no error")
		}
	})
}

// FuzzParseIndex feeds index.yaml documents, which come from repositories
// the agent does not control, to the parser: it must return an index or an
// error, never panic, and whatever it keeps must be valid to select from.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(sampleIndex))
	f.Add([]byte(`{"apiVersion":"v1","entries":{"a":[{"name":"a","version":"1.0.0","apiVersion":"v2"}]}}`))
	f.Add([]byte("apiVersion: v1\nentries:\n  a: [null, {}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseIndex(data)
		if err != nil {
			return
		}
		for name, versions := range idx.Entries {
			list := make([]string, 0, len(versions))
			for _, v := range versions {
				if v == nil || v.Metadata == nil {
					t.Fatalf("chart %q kept a nil entry", name)
				}
				list = append(list, v.Version)
			}
			_, _ = selectVersion(list, "")
		}
	})
}
