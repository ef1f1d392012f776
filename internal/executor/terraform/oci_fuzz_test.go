package terraform

import (
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzModuleLayer feeds registry manifests to the check that picks a
// module's layer: it never panics, and a layer it returns is one gzip'd tar
// of a sha256 digest within the limit; everything else is ErrModule.
func FuzzModuleLayer(f *testing.F) {
	layer := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("a", 64) + `","size":10}`
	f.Add(ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"layers":[`+layer+`]}`)
	f.Add(ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"layers":[`+layer+`,`+layer+`]}`)
	f.Add(ocispec.MediaTypeImageIndex, `{"schemaVersion":2,"manifests":[]}`)
	f.Add(ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"layers":[{"mediaType":"application/zip","digest":"sha256:00","size":-1}]}`)
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, mediaType, manifest string) {
		desc := ocispec.Descriptor{MediaType: mediaType}
		got, err := moduleLayer("oci://r.example.com/m:1", desc, []byte(manifest), limit)
		if err != nil {
			if !errors.Is(err, ErrModule) {
				t.Fatalf("error %v does not wrap ErrModule", err)
			}
			return
		}
		if !isModuleLayer(got.MediaType) || got.Digest.Validate() != nil || got.Digest.Algorithm() != "sha256" || got.Size < 0 || got.Size > limit {
			t.Fatalf("accepted layer %+v", got)
		}
	})
}

// FuzzParseLockInfo feeds CLI diagnostics to the lock-info parser: it never
// panics and never invents an ID the text does not hold.
func FuzzParseLockInfo(f *testing.F) {
	f.Add("Error: Error acquiring the state lock\n\nLock Info:\n  ID:        8c3f\n  Path:      tfstate\n  Operation: OperationTypeApply\n  Who:       root@agent\n  Created:   2026-12-02\n")
	f.Add("Lock Info:\nID:")
	f.Fuzz(func(t *testing.T, msg string) {
		li := parseLockInfo(msg)
		if li.ID != "" && !strings.Contains(msg, li.ID) {
			t.Fatalf("lock ID %q is not in the message", li.ID)
		}
		_ = li.describe()
	})
}
