package terraform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
)

// moduleArchive returns the module's tar.gz archive from the spec's source.
func (e *Executor) moduleArchive(ctx context.Context, t executor.Task, s *taskspec.Terraform) ([]byte, error) {
	switch {
	case len(s.Archive) > 0:
		return s.Archive, nil
	case s.Artifact != "":
		return executor.ReadArtifact(ctx, t, s.Artifact, e.opts.MaxModuleBytes)
	case strings.HasPrefix(s.URL, "oci://"):
		return e.pullModule(ctx, t, s)
	default:
		return e.download(ctx, s.URL)
	}
}

// maxModuleRedirects caps the redirects of a module download.
const maxModuleRedirects = 5

// errRedirect reports a module download redirected where it may not go.
var errRedirect = errors.New("redirect refused")

// checkModuleRedirect follows a module download's redirects only to https
// URLs, at most maxModuleRedirects of them: an https module must never
// arrive over plain HTTP.
func checkModuleRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("%w: to %s: a module is only fetched over https", errRedirect, req.URL.Redacted())
	}
	if len(via) > maxModuleRedirects {
		return fmt.Errorf("%w: more than %d redirects", errRedirect, maxModuleRedirects)
	}
	return nil
}

// download fetches an https module archive. Client errors other than
// timeouts and rate limits, and refused redirects, are terminal; the rest
// may be retried.
func (e *Executor) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: url: %w", ErrModule, err))
	}
	// A copy of the agent's client, so that its own redirect policy is
	// left alone for its other uses.
	client := *e.opts.HTTPClient
	client.CheckRedirect = checkModuleRedirect
	resp, err := client.Do(req)
	if errors.Is(err, errRedirect) {
		return nil, executor.Terminal(fmt.Errorf("%w: fetch %s: %w", ErrModule, url, err))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrModule, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%w: fetch %s: HTTP %s", ErrModule, url, resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return nil, executor.Terminal(err)
		}
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, e.opts.MaxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrModule, url, err)
	}
	if int64(len(data)) > e.opts.MaxModuleBytes {
		return nil, executor.Terminal(fmt.Errorf("%w: %s is larger than the %d bytes the agent accepts", ErrModule, url, e.opts.MaxModuleBytes))
	}
	return data, nil
}

// extract unpacks the archive under dir and returns the module's directory
// (dir/modulePath). Unsafe entries, links and archives over the caps are
// refused by archive.ReadTarGz; so is a module that holds override files,
// which could replace the backend the agent configures.
func (e *Executor) extract(data []byte, dir, modulePath string) (string, error) {
	files, err := archive.ReadTarGz(bytes.NewReader(data), archive.Options{
		MaxFileBytes:       e.opts.MaxFileBytes,
		MaxTotalBytes:      e.opts.MaxTotalBytes,
		MaxCompressedBytes: e.opts.MaxModuleBytes,
	})
	if err != nil {
		return "", executor.Terminal(fmt.Errorf("%w: module archive refused: %w", ErrModule, err))
	}
	prefix := ""
	if modulePath != "" {
		prefix = modulePath + "/"
	}
	configs := 0
	for _, f := range files {
		// archive.ReadTarGz returns fs.ValidPath names: relative, clean,
		// slash-separated, without "..".
		if rest, ok := strings.CutPrefix(f.Name, prefix); ok && !strings.Contains(rest, "/") {
			if isOverrideFile(rest) {
				return "", executor.Terminal(fmt.Errorf("%w: %q is an override file, which could replace the state backend the agent sets; merge it into the module", ErrModule, f.Name))
			}
			if strings.HasSuffix(rest, ".tf") || strings.HasSuffix(rest, ".tf.json") {
				configs++
			}
		}
		target := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return "", fmt.Errorf("%w: %w", ErrWorkDir, err)
		}
		mode := fs.FileMode(0o600)
		if f.Mode&0o100 != 0 {
			mode = 0o700
		}
		if err := os.WriteFile(target, f.Data, mode); err != nil {
			return "", fmt.Errorf("%w: %w", ErrWorkDir, err)
		}
	}
	if configs == 0 {
		where := "the archive's root"
		if modulePath != "" {
			where = fmt.Sprintf("path %q", modulePath)
		}
		return "", executor.Terminal(fmt.Errorf("%w: no .tf or .tf.json file at %s", ErrModule, where))
	}
	return filepath.Join(dir, filepath.FromSlash(path.Clean("./"+modulePath))), nil
}

// isOverrideFile reports whether the CLI treats name as an override file.
func isOverrideFile(name string) bool {
	for _, ext := range []string{".tf", ".tf.json"} {
		if base, ok := strings.CutSuffix(name, ext); ok && (base == "override" || strings.HasSuffix(base, "_override")) {
			return true
		}
	}
	return false
}
