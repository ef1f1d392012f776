package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func testOptions() Options {
	return Options{
		Name:     "outpost-agent",
		Binary:   []byte("\x7fELF pretend agent"),
		Extra:    []File{{Path: "/usr/local/bin/tofu", Mode: 0o755, Data: []byte("\x7fELF pretend tofu")}},
		CABundle: []byte("-----BEGIN CERTIFICATE-----\n"),
		Version:  "v1.2.3",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Licenses: "NOASSERTION",
		Created:  time.Unix(1767225600, 0),
	}
}

func mustAssemble(t *testing.T, o Options) v1.Image {
	t.Helper()
	img, err := Assemble(o)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readLayout reads the OCI layout in dir the way a registry client would:
// its index, which must list one image, and that image.
func readLayout(t *testing.T, dir string) (*v1.IndexManifest, v1.Image) {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(idx.Manifests))
	}
	img, err := ii.Image(idx.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx, img
}

func mustConfigFile(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// sha256Of reads all of rc and returns its digest and length.
func sha256Of(t *testing.T, rc io.ReadCloser, err error) (v1.Hash, int64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	h, n, err := v1.SHA256(rc)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

func TestAssembleIsReproducible(t *testing.T) {
	t.Parallel()
	want := mustDigest(t, mustAssemble(t, testOptions()))
	if got := mustDigest(t, mustAssemble(t, testOptions())); got != want {
		t.Fatalf("two assemblies of the same inputs differ: %s and %s", got, want)
	}
	changes := []struct {
		name   string
		change func(*Options)
	}{
		{"a different binary changes the digest", func(o *Options) { o.Binary = append(o.Binary, '!') }},
		{"a different version changes the digest", func(o *Options) { o.Version = "v1.2.4" }},
		{"a different creation time changes the digest", func(o *Options) { o.Created = o.Created.Add(time.Second) }},
		{"a different OpenTofu changes the digest", func(o *Options) { o.Extra[0].Data = []byte("other") }},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			tt.change(&o)
			if got := mustDigest(t, mustAssemble(t, o)); got == want {
				t.Errorf("digest stayed %s", got)
			}
		})
	}
}

func TestAssembleConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := WriteLayout(dir, "v1.2.3", mustAssemble(t, testOptions())); err != nil {
		t.Fatal(err)
	}
	_, img := readLayout(t, dir)
	cf := mustConfigFile(t, img)
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if !cf.Created.Equal(time.Unix(1767225600, 0)) {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH's 2026-01-01", cf.Created)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want the numeric non-root 65532:65532", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/outpost-agent"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want only the binary", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if len(cf.Config.Env) != 0 {
		t.Errorf("env %q, want none", cf.Config.Env)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "outpost-agent",
		"org.opencontainers.image.source":   "https://github.com/outposthq/outpost",
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.licenses": "NOASSERTION",
	}
	for k, v := range wantLabels {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	if len(cf.History) != 3 || len(cf.RootFS.DiffIDs) != 3 {
		t.Errorf("%d history entries and %d diff ids, want 3 each (base, tofu, binary)", len(cf.History), len(cf.RootFS.DiffIDs))
	}
}

// tarEntry is what a test checks of one layer entry.
type tarEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	body     string
}

// layerEntries reads an OCI layer's tar, checking that no entry carries
// a time or owner name that would tie the layer to the build.
func layerEntries(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	if mt, err := l.MediaType(); err != nil || mt != types.OCILayer {
		t.Errorf("layer media type %s, %v; want %s", mt, err, types.OCILayer)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: mtime %v, owner names %q:%q; want the epoch and none", hdr.Name, hdr.ModTime, hdr.Uname, hdr.Gname)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = tarEntry{typ: hdr.Typeflag, mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, body: string(body)}
	}
}

func TestAssembleLayers(t *testing.T) {
	t.Parallel()
	layers := mustLayers(t, mustAssemble(t, testOptions()))
	if len(layers) != 3 {
		t.Fatalf("%d layers, want base, tofu and binary", len(layers))
	}
	base, tofu, bin := layerEntries(t, layers[0]), layerEntries(t, layers[1]), layerEntries(t, layers[2])

	tests := []struct {
		name  string
		layer map[string]tarEntry
		path  string
		want  tarEntry
	}{
		{"the binary is root's and executable", bin, "usr/local/bin/outpost-agent",
			tarEntry{typ: tar.TypeReg, mode: 0o755, body: "\x7fELF pretend agent"}},
		{"the binary's directory is created", bin, "usr/local/bin/", tarEntry{typ: tar.TypeDir, mode: 0o755}},
		{"tofu has a layer of its own", tofu, "usr/local/bin/tofu",
			tarEntry{typ: tar.TypeReg, mode: 0o755, body: "\x7fELF pretend tofu"}},
		{"the nonroot user exists", base, "etc/passwd", tarEntry{typ: tar.TypeReg, mode: 0o644,
			body: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"}},
		{"the nonroot group exists", base, "etc/group", tarEntry{typ: tar.TypeReg, mode: 0o644,
			body: "root:x:0:\nnonroot:x:65532:\n"}},
		{"the CA bundle is where Go looks", base, "etc/ssl/certs/ca-certificates.crt",
			tarEntry{typ: tar.TypeReg, mode: 0o644, body: "-----BEGIN CERTIFICATE-----\n"}},
		{"/tmp is sticky and world-writable", base, "tmp/", tarEntry{typ: tar.TypeDir, mode: 0o1777}},
		{"the home belongs to nonroot alone", base, "home/nonroot/", tarEntry{typ: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.layer[tt.path]
			if !ok {
				t.Fatalf("%s missing from the layer", tt.path)
			}
			if got != tt.want {
				t.Errorf("%s = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
	for name := range bin {
		if name != "usr/local/bin/outpost-agent" && !strings.HasSuffix(name, "/") {
			t.Errorf("binary layer holds %s too", name)
		}
	}
}

func TestAssembleWithoutExtras(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Name, o.Extra, o.CABundle = "outpost-hub", nil, nil
	layers := mustLayers(t, mustAssemble(t, o))
	if len(layers) != 2 {
		t.Fatalf("%d layers, want base and binary", len(layers))
	}
	if _, ok := layerEntries(t, layers[0])["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Error("a CA bundle was installed though none was given")
	}
	if _, ok := layerEntries(t, layers[1])["usr/local/bin/outpost-hub"]; !ok {
		t.Error("the hub binary is missing")
	}
}

func TestWriteLayoutReadsBack(t *testing.T) {
	t.Parallel()
	img := mustAssemble(t, testOptions())
	dir := t.TempDir()
	// Writing twice leaves one image: the layout is replaced, not appended to.
	for range 2 {
		if _, err := WriteLayout(dir, "v1.2.3", img); err != nil {
			t.Fatal(err)
		}
	}
	want := mustDigest(t, img)
	idx, got := readLayout(t, dir)
	d := idx.Manifests[0]
	if d.Digest != want || d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("index lists %s %s, want %s %s", d.MediaType, d.Digest, types.OCIManifestSchema1, want)
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("index platform %+v, want linux/amd64", d.Platform)
	}
	if d.Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Errorf("index annotations %v, want the version as ref name", d.Annotations)
	}
	var ociLayout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || json.Unmarshal(b, &ociLayout) != nil || ociLayout.Version != "1.0.0" {
		t.Errorf("oci-layout = %q, %v; want image layout version 1.0.0", b, err)
	}
	if idx.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", idx.MediaType, types.OCIImageIndex)
	}

	// Every blob must match the digest and size it is named by.
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s; want OCI's manifest and config", m.MediaType, m.Config.MediaType)
	}
	raw, err := got.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := sha256Of(t, io.NopCloser(bytes.NewReader(raw)), nil); h != want {
		t.Errorf("manifest read back hashes to %s, want %s", h, want)
	}
	rawConfig, err := got.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if h, n := sha256Of(t, io.NopCloser(bytes.NewReader(rawConfig)), nil); h != m.Config.Digest || n != m.Config.Size {
		t.Errorf("config read back is %s (%d bytes), the manifest says %s (%d bytes)", h, n, m.Config.Digest, m.Config.Size)
	}
	cf := mustConfigFile(t, got)
	layers := mustLayers(t, got)
	if len(layers) != 3 || len(m.Layers) != 3 || len(cf.RootFS.DiffIDs) != 3 {
		t.Fatalf("%d layers, %d descriptors and %d diff ids, want 3 each", len(layers), len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		desc := m.Layers[i]
		if desc.MediaType != types.OCILayer {
			t.Errorf("layer %d: media type %s, want %s", i, desc.MediaType, types.OCILayer)
		}
		rc, err := l.Compressed()
		if h, n := sha256Of(t, rc, err); h != desc.Digest || n != desc.Size {
			t.Errorf("layer %d: blob is %s (%d bytes), the manifest says %s (%d bytes)", i, h, n, desc.Digest, desc.Size)
		}
		// Gunzip the stored blob here rather than trust the library's reader.
		rc, err = l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if h, _ := sha256Of(t, io.NopCloser(zr), err); h != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: tar digest %s, config's diff id %s", i, h, cf.RootFS.DiffIDs[i])
		}
		_ = rc.Close()
	}
	if got := layerEntries(t, layers[2])["usr/local/bin/outpost-agent"].body; got != "\x7fELF pretend agent" {
		t.Errorf("binary read back as %q", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"a name with a slash is refused", func(o *Options) { o.Name = "bin/outpost" }, "want a bare binary name"},
		{"an empty binary is refused", func(o *Options) { o.Binary = nil }, "the binary is empty"},
		{"a missing version is refused", func(o *Options) { o.Version = "" }, "no version"},
		{"a relative extra path is refused", func(o *Options) { o.Extra[0].Path = "usr/local/bin/tofu" }, "want a clean absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			tt.change(&o)
			_, err := Assemble(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr bool
	}{
		{"unset means the epoch", "", time.Unix(0, 0), false},
		{"seconds are read", "1767225600", time.Unix(1767225600, 0), false},
		{"a date string is refused", "2026-01-01", time.Time{}, true},
		{"a negative time is refused", "-1", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sourceDateEpoch(tt.in)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("sourceDateEpoch(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}
