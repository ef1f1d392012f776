package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The non-root user every image runs as, the one distroless calls nonroot.
const (
	nonrootID   = 65532
	nonrootName = "nonroot"
	nonrootHome = "/home/nonroot"
	binDir      = "/usr/local/bin"
	sourceURL   = "https://github.com/outposthq/outpost"
)

// fileTime is the mtime of every entry in every layer. It does not follow
// the creation time, so a layer whose files did not change keeps its
// digest from one commit to the next and registries share its blob.
var fileTime = time.Unix(0, 0).UTC()

// File is a regular file placed into an image, owned by root.
type File struct {
	// Path is absolute inside the image.
	Path string
	Mode fs.FileMode
	Data []byte
}

// Options describes one image. Assemble turns the same Options into the
// same bytes, so the same source gives the same digest.
type Options struct {
	// Name is the binary's name: it lands at /usr/local/bin/<Name> and is
	// the entrypoint.
	Name   string
	Binary []byte
	// Extra files go into a layer of their own below the binary's, so that
	// a new binary does not re-ship them (the agent's OpenTofu).
	Extra []File
	// CABundle, when set, is installed as /etc/ssl/certs/ca-certificates.crt,
	// where Go's crypto/x509 looks for the system roots on Linux.
	CABundle []byte
	// Version, Revision and Licenses fill the OCI labels.
	Version  string
	Revision string
	Licenses string
	// Created is the config's creation time (SOURCE_DATE_EPOCH).
	Created time.Time
}

// Validate reports what makes o unusable.
func (o Options) Validate() error {
	switch {
	case o.Name == "" || strings.ContainsAny(o.Name, "/ "):
		return fmt.Errorf("image name %q: want a bare binary name", o.Name)
	case len(o.Binary) == 0:
		return fmt.Errorf("image %s: the binary is empty", o.Name)
	case o.Version == "":
		return fmt.Errorf("image %s: no version", o.Name)
	}
	for _, f := range o.Extra {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return fmt.Errorf("image %s: extra file %q: want a clean absolute path", o.Name, f.Path)
		}
	}
	return nil
}

// Image is an assembled image: its manifest, config and layer blobs.
type Image struct {
	manifest, config blob
	layers           []blob
}

// blob is one content-addressed blob of an image.
type blob struct {
	mediaType types.MediaType
	data      []byte
	digest    v1.Hash
}

func newBlob(mt types.MediaType, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{mediaType: mt, data: data, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
}

func (b blob) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: b.mediaType, Size: int64(len(b.data)), Digest: b.digest}
}

// Digest is the manifest's digest, the image's name in a registry.
func (i *Image) Digest() v1.Hash { return i.manifest.digest }

// Assemble builds the image FROM scratch: a base layer with the nonroot
// user, /tmp and the CA bundle; a layer with the Extra files, if any; and
// a layer with the binary. It runs as 65532:65532 with the binary as its
// entrypoint, for linux/amd64.
func Assemble(o Options) (*Image, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	base, err := baseLayer(o.CABundle)
	if err != nil {
		return nil, err
	}
	type added struct {
		layer   layerBlob
		history string
	}
	adds := []added{{base, "base: nonroot user, /tmp, CA bundle"}}
	if len(o.Extra) > 0 {
		names := make([]string, 0, len(o.Extra))
		for _, f := range o.Extra {
			names = append(names, f.Path)
		}
		extra, err := layer(fileEntries(o.Extra))
		if err != nil {
			return nil, err
		}
		adds = append(adds, added{extra, "add " + strings.Join(names, " ")})
	}
	bin := path.Join(binDir, o.Name)
	binLayer, err := layer(fileEntries([]File{{Path: bin, Mode: 0o755, Data: o.Binary}}))
	if err != nil {
		return nil, err
	}
	adds = append(adds, added{binLayer, "add " + bin})

	created := v1.Time{Time: o.Created.UTC()}
	cf := v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
			Entrypoint: []string{bin},
			WorkingDir: "/",
			Labels: map[string]string{
				"org.opencontainers.image.title":    o.Name,
				"org.opencontainers.image.source":   sourceURL,
				"org.opencontainers.image.version":  o.Version,
				"org.opencontainers.image.revision": o.Revision,
				"org.opencontainers.image.licenses": o.Licenses,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := &Image{}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, a := range adds {
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, a.layer.diffID)
		cf.History = append(cf.History, v1.History{Created: created, CreatedBy: "hack/images: " + a.history})
		img.layers = append(img.layers, a.layer.blob)
		m.Layers = append(m.Layers, a.layer.descriptor())
	}
	// encoding/json sorts map keys, so the same config gives the same bytes.
	cb, err := json.Marshal(cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", o.Name, err)
	}
	img.config = newBlob(types.OCIConfigJSON, cb)
	m.Config = img.config.descriptor()
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", o.Name, err)
	}
	img.manifest = newBlob(types.OCIManifestSchema1, mb)
	return img, nil
}

// WriteLayout replaces dir with an OCI image layout holding img alone,
// tagged ref, and returns the image's manifest digest.
func WriteLayout(dir, ref string, img *Image) (v1.Hash, error) {
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("clear %s: %w", dir, err)
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil { //nolint:gosec // a layout is meant to be read by others
		return v1.Hash{}, err
	}
	for _, b := range append([]blob{img.manifest, img.config}, img.layers...) {
		if err := os.WriteFile(filepath.Join(blobs, b.digest.Hex), b.data, 0o644); err != nil { //nolint:gosec // as above
			return v1.Hash{}, err
		}
	}
	desc := img.manifest.descriptor()
	desc.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	desc.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return v1.Hash{}, err
	}
	for name, data := range map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": index,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil { //nolint:gosec // as above
			return v1.Hash{}, err
		}
	}
	return img.Digest(), nil
}

// entry is one tar header with its body; directories have none.
type entry struct {
	hdr  tar.Header
	data []byte
}

// baseLayer holds what a scratch image lacks for a non-root process: the
// user and group, its home, a sticky /tmp and the CA bundle.
func baseLayer(caBundle []byte) (layerBlob, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n",
		nonrootName, nonrootID, nonrootID, nonrootName, nonrootHome)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", nonrootName, nonrootID)
	files := []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
	}
	if len(caBundle) > 0 {
		files = append(files, File{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: caBundle})
	}
	entries := fileEntries(files)
	entries = append(entries,
		dirEntry("/tmp", 0o777|fs.ModeSticky, 0),
		dirEntry(nonrootHome, 0o700, nonrootID))
	return layer(entries)
}

// fileEntries makes tar entries for files, owned by root.
func fileEntries(files []File) []entry {
	out := make([]entry, 0, len(files))
	for _, f := range files {
		out = append(out, entry{hdr: tar.Header{
			Typeflag: tar.TypeReg,
			Name:     strings.TrimPrefix(f.Path, "/"),
			Mode:     int64(f.Mode.Perm()),
			Size:     int64(len(f.Data)),
		}, data: f.Data})
	}
	return out
}

func dirEntry(p string, mode fs.FileMode, owner int) entry {
	m := int64(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return entry{hdr: tar.Header{
		Typeflag: tar.TypeDir,
		Name:     strings.TrimPrefix(p, "/") + "/",
		Mode:     m,
		Uid:      owner,
		Gid:      owner,
	}}
}

// layer writes entries, plus every parent directory they need (0755,
// root), as a tar in path order with fixed times and no user names, and
// compresses it into an OCI layer.
func layer(entries []entry) (layerBlob, error) {
	byName := map[string]entry{}
	for _, e := range entries {
		if _, dup := byName[e.hdr.Name]; dup {
			return layerBlob{}, fmt.Errorf("layer: %s twice", e.hdr.Name)
		}
		byName[e.hdr.Name] = e
	}
	for _, e := range entries {
		for dir := path.Dir(strings.TrimSuffix(e.hdr.Name, "/")); dir != "."; dir = path.Dir(dir) {
			if _, ok := byName[dir+"/"]; !ok {
				byName[dir+"/"] = dirEntry("/"+dir, 0o755, 0)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := byName[n]
		hdr := e.hdr
		hdr.ModTime = fileTime
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			return layerBlob{}, fmt.Errorf("layer: %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return layerBlob{}, fmt.Errorf("layer: %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return layerBlob{}, fmt.Errorf("layer: %w", err)
	}
	b := buf.Bytes()
	if len(b) == 0 {
		return layerBlob{}, errors.New("layer: empty")
	}
	diffID := newBlob("", b).digest
	var gz bytes.Buffer
	// A zero gzip header (no name, no mtime) keeps the compressed bytes,
	// and so the digest, a function of the tar alone.
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return layerBlob{}, err
	}
	if _, err := zw.Write(b); err != nil {
		return layerBlob{}, fmt.Errorf("layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return layerBlob{}, fmt.Errorf("layer: %w", err)
	}
	return layerBlob{blob: newBlob(types.OCILayer, gz.Bytes()), diffID: diffID}, nil
}

// layerBlob is a compressed layer and the digest of its tar (its diff id).
type layerBlob struct {
	blob
	diffID v1.Hash
}
