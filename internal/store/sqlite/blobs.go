package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

// PutBlob streams r into the tenant's blobs. The content is written in
// chunks under a fresh upload id, each chunk its own short write, and
// becomes visible under its digest only once the digest verified.
func (s *Store) PutBlob(ctx context.Context, tenant, digest string, r io.Reader, maxSize int64) (string, int64, error) {
	if digest != "" && store.ValidDigest(digest) {
		var size int64
		err := s.r.QueryRowContext(ctx, `SELECT size FROM blobs WHERE tenant = ? AND digest = ?`, tenant, digest).Scan(&size)
		if err == nil {
			return digest, size, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", 0, fmt.Errorf("put blob: %w", err)
		}
	}
	if err := tenantExists(ctx, s.r, tenant); err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	upload, err := uploadID()
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	now := s.now()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO blob_uploads (id, tenant, created_at) VALUES (?, ?, ?)`, upload, tenant, now.UnixMicro()); err != nil {
		return "", 0, fmt.Errorf("put blob: start upload: %w", err)
	}
	got, size, err := store.WriteChunks(r, digest, maxSize, func(idx int, data []byte) error {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO blob_chunks (upload_id, idx, data) VALUES (?, ?, ?)`, upload, idx, data); err != nil {
			return fmt.Errorf("put blob: write chunk %d: %w", idx, err)
		}
		return nil
	})
	if err == nil {
		var published bool
		published, err = s.publishBlob(ctx, tenant, got, upload, size)
		if err == nil {
			if !published {
				s.dropUpload(ctx, upload)
			}
			return got, size, nil
		}
	}
	s.dropUpload(ctx, upload)
	return "", 0, err
}

// publishBlob makes upload visible as the tenant's blob digest; false when
// a blob with that digest already existed.
func (s *Store) publishBlob(ctx context.Context, tenant, digest, upload string, size int64) (bool, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO blobs (tenant, digest, upload_id, size, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant, digest) DO NOTHING`, tenant, digest, upload, size, s.now().UnixMicro())
	if err != nil {
		return false, fmt.Errorf("put blob: publish: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("put blob: publish: %w", err)
	}
	return n == 1, nil
}

// dropUpload deletes an upload's chunks, even when ctx has ended, so a
// failed put leaves nothing behind.
func (s *Store) dropUpload(ctx context.Context, upload string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, `DELETE FROM blob_uploads WHERE id = ?`, upload); err != nil {
		s.log.WarnContext(ctx, "delete abandoned blob upload", "upload", upload, "error", err)
	}
}

func uploadID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// OpenBlob returns a reader of the tenant's blob that fetches one chunk per
// query; ctx bounds every read of it.
func (s *Store) OpenBlob(ctx context.Context, tenant, digest string) (store.BlobReader, error) {
	var (
		upload string
		size   int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT upload_id, size FROM blobs WHERE tenant = ? AND digest = ?`, tenant, digest).Scan(&upload, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("open blob %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	return store.NewChunkReader(size, func(idx int) ([]byte, error) {
		var data []byte
		err := s.r.QueryRowContext(ctx, `SELECT data FROM blob_chunks WHERE upload_id = ? AND idx = ?`, upload, idx).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("blob %s deleted while read: %w", digest, store.ErrNotFound)
		}
		return data, err
	}), nil
}

// BlobExists reports whether the tenant has the blob digest.
func (s *Store) BlobExists(ctx context.Context, tenant, digest string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM blobs WHERE tenant = ? AND digest = ?`, tenant, digest).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob exists: %w", err)
	}
	return true, nil
}

// DeleteUnreferencedBlobs deletes blobs stored before cutoff that no task
// nor release revision of their tenant references, and uploads abandoned
// before cutoff.
func (s *Store) DeleteUnreferencedBlobs(ctx context.Context, cutoff time.Time) (int, error) {
	c := store.Micro(cutoff).UnixMicro()
	var n int64
	_, err := s.write(ctx, "delete unreferenced blobs", func(tx *tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE created_at < ? AND NOT EXISTS (
			SELECT 1 FROM task_artifacts a WHERE a.tenant = blobs.tenant AND a.digest = blobs.digest)
			AND NOT EXISTS (SELECT 1 FROM release_artifacts a WHERE a.tenant = blobs.tenant AND a.digest = blobs.digest)`, c)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM blob_uploads WHERE created_at < ? AND NOT EXISTS (
			SELECT 1 FROM blobs b WHERE b.upload_id = blob_uploads.id)`, c)
		return err
	})
	return int(n), err
}
