package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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

// Assemble builds the image FROM scratch: a base layer with the nonroot
// user, /tmp and the CA bundle; a layer with the Extra files, if any; and
// a layer with the binary. It runs as 65532:65532 with the binary as its
// entrypoint, for linux/amd64, and its manifest, config and layers carry
// OCI media types.
func Assemble(o Options) (v1.Image, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created.UTC()}
	base, err := baseLayer(o.CABundle)
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{addendum(base, created, "base: nonroot user, /tmp, CA bundle")}
	if len(o.Extra) > 0 {
		names := make([]string, 0, len(o.Extra))
		for _, f := range o.Extra {
			names = append(names, f.Path)
		}
		extra, err := layer(fileEntries(o.Extra))
		if err != nil {
			return nil, err
		}
		adds = append(adds, addendum(extra, created, "add "+strings.Join(names, " ")))
	}
	bin := path.Join(binDir, o.Name)
	binLayer, err := layer(fileEntries([]File{{Path: bin, Mode: 0o755, Data: o.Binary}}))
	if err != nil {
		return nil, err
	}
	adds = append(adds, addendum(binLayer, created, "add "+bin))

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	// Append rather than AppendLayers: it records each layer's history.
	if img, err = mutate.Append(img, adds...); err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", o.Name, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{
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
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", o.Name, err)
	}
	if img, err = mutate.CreatedAt(img, created); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", o.Name, err)
	}
	return img, nil
}

// addendum is l with its history entry, dated like the image.
func addendum(l v1.Layer, created v1.Time, history string) mutate.Addendum {
	return mutate.Addendum{Layer: l, History: v1.History{Created: created, CreatedBy: "hack/images: " + history}}
}

// WriteLayout replaces dir with an OCI image layout holding img alone,
// tagged ref, and returns the image's manifest digest.
func WriteLayout(dir, ref string, img v1.Image) (v1.Hash, error) {
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("clear %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img,
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}),
		layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}),
	); err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", dir, err)
	}
	return img.Digest()
}

// entry is one tar header with its body; directories have none.
type entry struct {
	hdr  tar.Header
	data []byte
}

// baseLayer holds what a scratch image lacks for a non-root process: the
// user and group, its home, a sticky /tmp and the CA bundle.
func baseLayer(caBundle []byte) (v1.Layer, error) {
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
func layer(entries []entry) (v1.Layer, error) {
	byName := map[string]entry{}
	for _, e := range entries {
		if _, dup := byName[e.hdr.Name]; dup {
			return nil, fmt.Errorf("layer: %s twice", e.hdr.Name)
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
			return nil, fmt.Errorf("layer: %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	b := buf.Bytes()
	if len(b) == 0 {
		return nil, errors.New("layer: empty")
	}
	// ggcr compresses with compress/gzip and a zero header (no name, no
	// mtime), so the compressed bytes, and the digest, are a function of
	// the tar and the Go release alone. Caching keeps it from compressing
	// the layer again for the layout.
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}
