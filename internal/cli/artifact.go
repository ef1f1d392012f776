package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
)

// artifactChunkSize is the size of each UploadArtifact chunk, well under
// the hub's message limit.
const artifactChunkSize = 1 << 20

// uploadArtifact streams the file at path to the hub in chunks and returns
// its digest ("sha256:<hex>").
func uploadArtifact(ctx context.Context, client outpostv1connect.OperatorServiceClient, path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file to upload
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	defer closeQuietly(f)
	return uploadContent(ctx, client, path, f)
}

// uploadContent streams r to the hub in chunks and returns its digest;
// name says what r is in errors.
//
// The protocol wants the digest and size in the header, before the first
// chunk, so r is read twice: once to hash it, once to send it while
// hashing again. Content that changes in between fails the upload here
// rather than storing it under the wrong digest.
func uploadContent(ctx context.Context, client outpostv1connect.OperatorServiceClient, name string, r io.ReadSeeker) (string, error) {
	h := sha256.New()
	size, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", name, err)
	}
	digest := digestOf(h)
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("artifact %s: %w", name, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the stream on any early return
	stream := client.UploadArtifact(ctx)
	send := func(req *v1.UploadArtifactRequest) error {
		err := stream.Send(req)
		if errors.Is(err, io.EOF) {
			// The hub ended the stream early; its reason comes with the response.
			_, err = stream.CloseAndReceive()
		}
		if err != nil {
			return apiError("upload "+name, err)
		}
		return nil
	}
	header := &v1.UploadArtifactRequest{Part: &v1.UploadArtifactRequest_Header{
		Header: &v1.ArtifactHeader{Digest: digest, Size: size},
	}}
	if err := send(header); err != nil {
		return "", err
	}
	h.Reset()
	var sent int64
	buf := make([]byte, artifactChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			sent += int64(n)
			if err := send(&v1.UploadArtifactRequest{Part: &v1.UploadArtifactRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return "", err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("artifact %s: %w", name, err)
		}
	}
	if sent != size || digestOf(h) != digest {
		return "", fmt.Errorf("artifact %s changed while it was uploaded; upload it again once it is complete", name)
	}
	res, err := stream.CloseAndReceive()
	if err != nil {
		return "", apiError("upload "+name, err)
	}
	if got := res.Msg.GetDigest(); got != digest {
		return "", fmt.Errorf("upload %s: the hub stored digest %s, the content has %s", name, got, digest)
	}
	return digest, nil
}

func digestOf(h hash.Hash) string {
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
