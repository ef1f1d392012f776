package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// BlobChunkSize is the size of the rows a blob is stored in, so that no
// blob ever sits whole in memory on its way in or out.
const BlobChunkSize = 1 << 20

// ValidDigest reports whether d reads "sha256:<64 lowercase hex>".
func ValidDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != sha256.Size*2 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// WriteChunks reads r in BlobChunkSize pieces and hands each to put, in
// order from index 0, while hashing. It fails with ErrTooLarge once more
// than maxSize bytes arrive (maxSize <= 0: no cap), and with
// ErrDigestMismatch when want is set and the content hashes otherwise. It
// returns the content's digest and size; on error the caller discards what
// put stored.
func WriteChunks(r io.Reader, want string, maxSize int64, put func(idx int, data []byte) error) (string, int64, error) {
	if want != "" && !ValidDigest(want) {
		return "", 0, fmt.Errorf("put blob: %w: %q is not a sha256:<hex> digest", ErrDigestMismatch, want)
	}
	var (
		h    = sha256.New()
		buf  = make([]byte, BlobChunkSize)
		size int64
	)
	for idx := 0; ; idx++ {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			size += int64(n)
			if maxSize > 0 && size > maxSize {
				return "", size, fmt.Errorf("put blob: %w: more than %d bytes", ErrTooLarge, maxSize)
			}
			h.Write(buf[:n])
			if perr := put(idx, buf[:n]); perr != nil {
				return "", size, perr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", size, fmt.Errorf("put blob: read: %w", err)
		}
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return "", size, fmt.Errorf("put blob: %w: declared %s, content is %s", ErrDigestMismatch, want, got)
	}
	return got, size, nil
}

// ChunkReader is a BlobReader that fetches one chunk at a time.
type ChunkReader struct {
	size  int64
	next  int
	cur   []byte
	fetch func(idx int) ([]byte, error)
	read  int64
}

var _ BlobReader = (*ChunkReader)(nil)

// NewChunkReader returns a reader of a blob of size bytes whose chunk idx
// (from 0) fetch returns. It fails with io.ErrUnexpectedEOF when the chunks
// end before size bytes.
func NewChunkReader(size int64, fetch func(idx int) ([]byte, error)) *ChunkReader {
	return &ChunkReader{size: size, fetch: fetch}
}

// Size is the blob's total size.
func (r *ChunkReader) Size() int64 { return r.size }

// Read implements io.Reader.
func (r *ChunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.read >= r.size {
			return 0, io.EOF
		}
		if r.fetch == nil {
			return 0, errors.New("read blob: reader closed")
		}
		c, err := r.fetch(r.next)
		if err != nil {
			return 0, fmt.Errorf("read blob chunk %d: %w", r.next, err)
		}
		if len(c) == 0 {
			return 0, fmt.Errorf("read blob chunk %d: %w", r.next, io.ErrUnexpectedEOF)
		}
		r.next++
		r.cur = c
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.read += int64(n)
	return n, nil
}

// Close releases the reader; further reads fail.
func (r *ChunkReader) Close() error {
	r.fetch = nil
	r.cur = nil
	return nil
}
