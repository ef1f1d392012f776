package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

func mustAssemble(t *testing.T, o Options) *Image {
	t.Helper()
	img, err := Assemble(o)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t *testing.T, img *Image) v1.Hash {
	t.Helper()
	return img.Digest()
}

// readLayout reads an OCI layout the way a registry client would, checking
// every blob against its digest: the index, its one image's manifest and
// config, and the layers' descriptors.
type readLayout struct {
	t   *testing.T
	dir string
}

func (r readLayout) blob(d v1.Descriptor) []byte {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "blobs", d.Digest.Algorithm, d.Digest.Hex))
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if d.Digest.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != d.Digest.Hex || int64(len(b)) != d.Size {
		r.t.Fatalf("blob %s (%d bytes) does not match its descriptor's digest or size %d", d.Digest, len(b), d.Size)
	}
	return b
}

func (r readLayout) image() (*v1.IndexManifest, *v1.Manifest, *v1.ConfigFile, []layerRead) {
	r.t.Helper()
	f, err := os.Open(filepath.Join(r.dir, "index.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	idx, err := v1.ParseIndexManifest(f)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		r.t.Fatalf("index lists %d manifests, want 1", len(idx.Manifests))
	}
	m, err := v1.ParseManifest(bytes.NewReader(r.blob(idx.Manifests[0])))
	if err != nil {
		r.t.Fatal(err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(r.blob(m.Config)))
	if err != nil {
		r.t.Fatal(err)
	}
	var layers []layerRead
	for _, d := range m.Layers {
		layers = append(layers, layerRead{mediaType: d.MediaType, compressed: r.blob(d)})
	}
	return idx, m, cf, layers
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
	_, _, cf, _ := readLayout{t, dir}.image()
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

// layerRead is a layer as stored: its media type and gzip bytes.
type layerRead struct {
	mediaType  types.MediaType
	compressed []byte
}

func imageLayers(img *Image) []layerRead {
	var out []layerRead
	for _, l := range img.layers {
		out = append(out, layerRead{mediaType: l.mediaType, compressed: l.data})
	}
	return out
}

func layerEntries(t *testing.T, l layerRead) map[string]tarEntry {
	t.Helper()
	if l.mediaType != types.OCILayer {
		t.Errorf("layer media type %s, want %s", l.mediaType, types.OCILayer)
	}
	zr, err := gzip.NewReader(bytes.NewReader(l.compressed))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tarEntry{}
	tr := tar.NewReader(zr)
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
	layers := imageLayers(mustAssemble(t, testOptions()))
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
	layers := imageLayers(mustAssemble(t, o))
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
	idx, m, cf, layers := readLayout{t, dir}.image()
	if idx.MediaType != types.OCIImageIndex || m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s, %s; want OCI's index, manifest and config", idx.MediaType, m.MediaType, m.Config.MediaType)
	}
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
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q, %v", b, err)
	}
	if len(layers) != 3 || len(cf.RootFS.DiffIDs) != 3 {
		t.Fatalf("%d layers and %d diff ids, want 3 each", len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		zr, err := gzip.NewReader(bytes.NewReader(l.compressed))
		if err != nil {
			t.Fatal(err)
		}
		tarBytes, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(tarBytes)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != cf.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: tar digest %s, config's diff id %s", i, got, cf.RootFS.DiffIDs[i])
		}
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
