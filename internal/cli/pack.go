package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"time"
)

// packFile is one file of a directory the CLI packs (a chart, a module),
// named relative to it with slashes.
type packFile struct {
	name string
	data []byte
}

// packCaps are an agent's bounds on an archive's files, which the CLI
// applies while it reads a directory so that it never packs what the
// agent would refuse.
type packCaps struct {
	files      int
	fileBytes  int64
	totalBytes int64
}

// admit checks one more file of size bytes, named name, against the
// files already read (count of them, total bytes).
func (c packCaps) admit(name string, size int64, count int, total int64) error {
	switch {
	case count == c.files:
		return fmt.Errorf("more than %d files, more than an agent accepts", c.files)
	case size > c.fileBytes:
		return fmt.Errorf("%s: %d bytes, more than the %d MiB per file an agent accepts", name, size, c.fileBytes>>20)
	case total+size > c.totalBytes:
		return fmt.Errorf("the files come to more than the %d MiB an agent accepts", c.totalBytes>>20)
	}
	return nil
}

// packTarGz writes files, in their order, as a reproducible tar.gz: each
// a regular file named prefix+name, mode 0644, time 0, in tar format
// format (zero: the writer's choice); at most maxBytes once compressed.
func packTarGz(files []packFile, prefix string, format tar.Format, maxBytes int) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	tw := tar.NewWriter(gz)
	epoch := time.Unix(0, 0)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: prefix + f.name, Size: int64(len(f.data)),
			Mode: 0o644, ModTime: epoch, Format: format,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if buf.Len() > maxBytes {
		return nil, fmt.Errorf("packs to %d MiB, more than the %d MiB an agent accepts", buf.Len()>>20, maxBytes>>20)
	}
	return buf.Bytes(), nil
}
