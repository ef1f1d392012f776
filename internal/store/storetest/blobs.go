package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

var blobScenarios = []scenario{
	{"a blob of several chunks round-trips", testBlobRoundTrip},
	{"a blob over the size cap is refused and leaves nothing", testBlobTooLarge},
	{"a blob whose content does not match its digest is refused and leaves nothing", testBlobDigestMismatch},
	{"unreferenced blobs are deleted after the cutoff", testBlobGC},
}

// content returns n deterministic, incompressible bytes (a SHA-256 counter
// stream from seed) and their digest.
func content(seed uint64, n int) ([]byte, string) {
	b := make([]byte, 0, n+sha256.Size)
	var block [16]byte
	binary.BigEndian.PutUint64(block[:8], seed)
	for i := uint64(0); len(b) < n; i++ {
		binary.BigEndian.PutUint64(block[8:], i)
		sum := sha256.Sum256(block[:])
		b = append(b, sum[:]...)
	}
	b = b[:n]
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

// failingReader fails the test if a put reads content it should skip.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("a put of an existing digest read its content")
	return 0, io.ErrUnexpectedEOF
}

func testBlobRoundTrip(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	data, digest := content(1, 2*store.BlobChunkSize+store.BlobChunkSize/2)

	gotDigest, size, err := s.PutBlob(ctx, f.tenant, "", bytes.NewReader(data), int64(len(data)))
	must(t, err)
	if gotDigest != digest || size != int64(len(data)) {
		t.Fatalf("PutBlob = %s, %d; want %s, %d", gotDigest, size, digest, len(data))
	}
	ok, err := s.BlobExists(ctx, f.tenant, digest)
	must(t, err)
	if !ok {
		t.Fatal("BlobExists = false after PutBlob")
	}
	r, err := s.OpenBlob(ctx, f.tenant, digest)
	must(t, err)
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(data))
	}
	// Small reads cross chunk boundaries.
	var back bytes.Buffer
	buf := make([]byte, 100_000)
	if _, err := io.CopyBuffer(&back, struct{ io.Reader }{r}, buf); err != nil {
		t.Fatal(err)
	}
	must(t, r.Close())
	if !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("read %d bytes that differ from the %d put", back.Len(), len(data))
	}

	// A repeat put of a stored digest is a no-op.
	again, size, err := s.PutBlob(ctx, f.tenant, digest, failingReader{t}, 10)
	must(t, err)
	if again != digest || size != int64(len(data)) {
		t.Fatalf("repeat PutBlob = %s, %d", again, size)
	}
	// A repeat with content and no digest keeps one copy.
	_, _, err = s.PutBlob(ctx, f.tenant, "", bytes.NewReader(data), 0)
	must(t, err)

	// An empty blob is a blob too.
	emptyDigest, size, err := s.PutBlob(ctx, f.tenant, "", bytes.NewReader(nil), 10)
	must(t, err)
	r, err = s.OpenBlob(ctx, f.tenant, emptyDigest)
	must(t, err)
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 || size != 0 {
		t.Fatalf("empty blob: %d bytes, size %d, err %v", len(b), size, err)
	}

	// Blobs are per tenant.
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	ok, err = s.BlobExists(ctx, "globex", digest)
	must(t, err)
	if ok {
		t.Fatal("another tenant sees the blob")
	}
	_, err = s.OpenBlob(ctx, "globex", digest)
	wantErr(t, err, store.ErrNotFound)
}

func testBlobTooLarge(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	data, digest := content(2, store.BlobChunkSize+10)
	tests := []struct {
		name   string
		digest string
	}{
		{"without a declared digest", ""},
		{"with the right declared digest", digest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.PutBlob(ctx, f.tenant, tt.digest, bytes.NewReader(data), store.BlobChunkSize)
			wantErr(t, err, store.ErrTooLarge)
			ok, err := s.BlobExists(ctx, f.tenant, digest)
			must(t, err)
			if ok {
				t.Fatal("a refused blob exists")
			}
		})
	}
	// At the cap exactly it fits.
	_, size, err := s.PutBlob(ctx, f.tenant, digest, bytes.NewReader(data), int64(len(data)))
	must(t, err)
	if size != int64(len(data)) {
		t.Fatalf("size = %d", size)
	}
}

func testBlobDigestMismatch(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	data, actual := content(3, store.BlobChunkSize+1)
	_, declared := content(4, 10)
	_, _, err := s.PutBlob(ctx, f.tenant, declared, bytes.NewReader(data), 0)
	wantErr(t, err, store.ErrDigestMismatch)
	for _, d := range []string{declared, actual} {
		ok, err := s.BlobExists(ctx, f.tenant, d)
		must(t, err)
		if ok {
			t.Fatalf("blob %s exists after a digest mismatch", d)
		}
	}
	_, _, err = s.PutBlob(ctx, f.tenant, "md5:abc", bytes.NewReader(data), 0)
	if err == nil {
		t.Fatal("PutBlob accepted a malformed digest")
	}
	_, _, err = s.PutBlob(ctx, "nobody", "", bytes.NewReader(data), 0)
	wantErr(t, err, store.ErrNotFound)
	// A reader failing midway stores nothing either.
	_, _, err = s.PutBlob(ctx, f.tenant, "", io.MultiReader(bytes.NewReader(data), errReader{}), 0)
	if err == nil {
		t.Fatal("PutBlob ignored a read error")
	}
	ok, err := s.BlobExists(ctx, f.tenant, actual)
	must(t, err)
	if ok {
		t.Fatal("a blob exists after a read error")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testBlobGC(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	must(t, s.CreateTenant(ctx, store.Tenant{Name: "globex", CreatedAt: T0}, "operator:root"))
	used, usedDigest := content(5, 1000)
	unused, unusedDigest := content(6, store.BlobChunkSize+1)
	for _, p := range []struct {
		tenant string
		data   []byte
	}{{f.tenant, used}, {f.tenant, unused}, {"globex", used}} {
		_, _, err := s.PutBlob(ctx, p.tenant, "", bytes.NewReader(p.data), 0)
		must(t, err)
	}
	task := f.task("t1")
	task.Artifacts = []string{usedDigest}
	f.enqueue(t, task)

	// Blobs are stamped by the store's clock: nothing is older than an hour ago.
	n, err := s.DeleteUnreferencedBlobs(ctx, time.Now().Add(-time.Hour))
	must(t, err)
	if n != 0 {
		t.Fatalf("DeleteUnreferencedBlobs(an hour ago) = %d, want 0", n)
	}
	n, err = s.DeleteUnreferencedBlobs(ctx, time.Now().Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteUnreferencedBlobs = %d, want 2 (acme's unused, globex's copy)", n)
	}
	for _, tc := range []struct {
		tenant, digest string
		want           bool
	}{{f.tenant, usedDigest, true}, {f.tenant, unusedDigest, false}, {"globex", usedDigest, false}} {
		ok, err := s.BlobExists(ctx, tc.tenant, tc.digest)
		must(t, err)
		if ok != tc.want {
			t.Fatalf("BlobExists(%s, %.20s) = %v, want %v", tc.tenant, tc.digest, ok, tc.want)
		}
	}
	r, err := s.OpenBlob(ctx, f.tenant, usedDigest)
	must(t, err)
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, used) {
		t.Fatalf("referenced blob after GC: %v", err)
	}

	// Once its task is gone, the blob goes too.
	f.complete(t, f.claim(t, "a1", 1, T0)[0], store.OutcomeSucceeded, false, T0)
	_, err = s.DeleteFinishedTasks(ctx, T0.Add(time.Hour))
	must(t, err)
	n, err = s.DeleteUnreferencedBlobs(ctx, time.Now().Add(time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("DeleteUnreferencedBlobs after the task's deletion = %d, want 1", n)
	}
}
