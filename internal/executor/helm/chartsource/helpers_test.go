package chartsource

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

const (
	testUser     = "deployer"
	testPassword = "s3cret-Pa55word"
)

// chartArchive builds a minimal valid chart .tgz in memory. padding adds
// that many incompressible bytes, to make archives of a chosen size.
func chartArchive(t *testing.T, name, version string, padding int) []byte {
	t.Helper()
	files := []struct {
		name string
		body []byte
	}{
		{"Chart.yaml", []byte("apiVersion: v2\nname: " + name + "\nversion: " + version + "\ntype: application\n")},
		{"values.yaml", []byte("replicas: 1\n")},
		{"templates/configmap.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n")},
	}
	if padding > 0 {
		pad := make([]byte, padding)
		_, _ = rand.Read(pad)
		files = append(files, struct {
			name string
			body []byte
		}{"files/padding.bin", pad})
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{Name: name + "/" + f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// isolateHome points HOME, the XDG directories, Docker's and Helm's config
// at one empty directory for the test, and fails the test if anything was
// written there by the time it ends: the fetcher must keep credentials, and
// everything else, off the disk.
func isolateHome(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "DOCKER_CONFIG", "HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"} {
		t.Setenv(v, dir)
	}
	t.Cleanup(func() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("the fetch left %s in the home directory", e.Name())
		}
	})
}

// caPEM returns the PEM of srv's certificate, to pass as Request.CAPEM.
func caPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func newFetcher(t *testing.T, opts Options) *Fetcher {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
