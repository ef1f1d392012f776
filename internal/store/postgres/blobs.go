package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/internal/store"
)

// PutBlob streams r into the tenant's blobs. The content is written in
// chunks under a fresh upload id, each chunk its own statement, and becomes
// visible under its digest only once the digest verified.
func (s *Store) PutBlob(ctx context.Context, tenant, digest string, r io.Reader, maxSize int64) (string, int64, error) {
	if digest != "" && store.ValidDigest(digest) {
		var size int64
		err := s.pool.QueryRow(ctx, `SELECT size FROM blobs WHERE tenant = $1 AND digest = $2`, tenant, digest).Scan(&size)
		if err == nil {
			return digest, size, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", 0, fmt.Errorf("put blob: %w", err)
		}
	}
	if err := tenantExists(ctx, s.pool, tenant); err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	upload, err := uploadID()
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO blob_uploads (id, tenant, created_at) VALUES ($1, $2, $3)`, upload, tenant, s.now()); err != nil {
		return "", 0, fmt.Errorf("put blob: start upload: %w", err)
	}
	got, size, err := store.WriteChunks(r, digest, maxSize, func(idx int, data []byte) error {
		if _, err := s.pool.Exec(ctx, `INSERT INTO blob_chunks (upload_id, idx, data) VALUES ($1, $2, $3)`, upload, idx, data); err != nil {
			return fmt.Errorf("put blob: write chunk %d: %w", idx, err)
		}
		return nil
	})
	if err == nil {
		var tag interface{ RowsAffected() int64 }
		tag, err = s.pool.Exec(ctx, `INSERT INTO blobs (tenant, digest, upload_id, size, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant, digest) DO NOTHING`, tenant, got, upload, size, s.now())
		if err == nil {
			if tag.RowsAffected() == 0 {
				// Another put of the same content won the race.
				s.dropUpload(ctx, upload)
			}
			return got, size, nil
		}
		err = fmt.Errorf("put blob: publish: %w", err)
	}
	s.dropUpload(ctx, upload)
	return "", 0, err
}

// dropUpload deletes an upload's chunks, even when ctx has ended, so a
// failed put leaves nothing behind.
func (s *Store) dropUpload(ctx context.Context, upload string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM blob_uploads WHERE id = $1`, upload); err != nil {
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
	err := s.pool.QueryRow(ctx, `SELECT upload_id, size FROM blobs WHERE tenant = $1 AND digest = $2`, tenant, digest).Scan(&upload, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("open blob %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	return store.NewChunkReader(size, func(idx int) ([]byte, error) {
		var data []byte
		err := s.pool.QueryRow(ctx, `SELECT data FROM blob_chunks WHERE upload_id = $1 AND idx = $2`, upload, idx).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("blob %s deleted while read: %w", digest, store.ErrNotFound)
		}
		return data, err
	}), nil
}

// BlobExists reports whether the tenant has the blob digest.
func (s *Store) BlobExists(ctx context.Context, tenant, digest string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM blobs WHERE tenant = $1 AND digest = $2)`, tenant, digest).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("blob exists: %w", err)
	}
	return ok, nil
}

// DeleteUnreferencedBlobs deletes blobs stored before cutoff that no task
// nor release revision of their tenant references, and uploads abandoned
// before cutoff.
func (s *Store) DeleteUnreferencedBlobs(ctx context.Context, cutoff time.Time) (int, error) {
	c := store.Micro(cutoff)
	var n int64
	_, err := s.write(ctx, "delete unreferenced blobs", func(tx *tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM blobs WHERE created_at < $1 AND NOT EXISTS (
			SELECT 1 FROM task_artifacts a WHERE a.tenant = blobs.tenant AND a.digest = blobs.digest)
			AND NOT EXISTS (SELECT 1 FROM release_artifacts a WHERE a.tenant = blobs.tenant AND a.digest = blobs.digest)`, c)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM blob_uploads u WHERE created_at < $1 AND NOT EXISTS (
			SELECT 1 FROM blobs b WHERE b.upload_id = u.id)`, c)
		return err
	})
	return int(n), err
}
