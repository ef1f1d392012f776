package helm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	helmarchive "helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm/chartsource"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// maxSubchartDepth bounds how deep charts/ archives may nest.
const maxSubchartDepth = 5

// fetched is a chart archive and where it came from.
type fetched struct {
	archive []byte
	source  string
}

// fetch returns the chart archive the spec names: inline, a task artifact,
// or from a repository with credentials resolved from the vault.
func (e *Executor) fetch(ctx context.Context, t executor.Task, c *taskspec.HelmChart) (*fetched, error) {
	switch {
	case len(c.Archive) > 0:
		return &fetched{archive: c.Archive, source: "inline"}, nil
	case c.Artifact != "":
		data, err := executor.ReadArtifact(ctx, t, c.Artifact, e.opts.MaxChartBytes)
		if err != nil {
			return nil, err
		}
		return &fetched{archive: data, source: "artifact " + c.Artifact}, nil
	}
	req := chartsource.Request{Repository: c.Repository, Chart: c.Name, Version: c.Version, CAPEM: []byte(c.CA), PlainHTTP: c.PlainHTTP}
	if c.Password != "" {
		user, err := vault.Expand(ctx, c.Username, e.resolve(t))
		if err != nil {
			return nil, executor.Terminal(fmt.Errorf("username: %w", err))
		}
		pass, err := vault.Expand(ctx, c.Password, e.resolve(t))
		if err != nil {
			return nil, credentialError("password", err)
		}
		req.Username, req.Password = user, pass
	}
	got, err := e.charts.Fetch(ctx, req)
	if err != nil {
		if chartsource.IsPermanent(err) {
			return nil, executor.Terminal(err)
		}
		return nil, err
	}
	return &fetched{archive: got.Archive, source: got.Source + " " + got.Name + "@" + got.Version}, nil
}

// resolve returns a vault resolver that registers every value it returns
// with the task's redactor before anything can report it.
func (e *Executor) resolve(t executor.Task) vault.ResolveFunc {
	return func(ctx context.Context, ref vault.Ref) (string, error) {
		v, err := e.opts.Vault.Resolve(ctx, ref)
		if err != nil {
			return "", err
		}
		if t.Redact != nil {
			t.Redact.AddSecret(v)
		}
		return v, nil
	}
}

func credentialError(field string, err error) error {
	wrapped := fmt.Errorf("%s: %w", field, err)
	if vault.IsPermanent(err) {
		return executor.Terminal(wrapped)
	}
	return wrapped
}

// load unpacks a chart archive under the executor's caps, checks its YAML
// and JSON schemas, and loads it. Subchart archives under charts/ are
// unpacked by the same rules and handed to Helm as directories, so Helm's
// own archive reader never sees untrusted bytes.
func (e *Executor) load(data []byte) (*chart.Chart, error) {
	opts := e.opts.archiveOptions()
	budget := opts.MaxTotalBytes
	files, err := e.unpack(data, "", 0, &budget)
	if err != nil {
		return nil, err
	}
	buffered := make([]*helmarchive.BufferedFile, len(files))
	for i, f := range files {
		buffered[i] = &helmarchive.BufferedFile{Name: f.Name, Data: f.Data}
	}
	ch, err := loader.LoadFiles(buffered)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Name(), err)
	}
	return ch, nil
}

// unpack reads one chart archive into files named relative to the chart
// root, prefixed with prefix, expanding charts/*.tgz into directories.
func (e *Executor) unpack(data []byte, prefix string, depth int, budget *int64) ([]archive.File, error) {
	if depth > maxSubchartDepth {
		return nil, fmt.Errorf("%w: subcharts nested more than %d deep", archive.ErrTooLarge, maxSubchartDepth)
	}
	if *budget <= 0 {
		return nil, fmt.Errorf("%w: the chart and its subcharts unpack to more than %d bytes", archive.ErrTooLarge, e.opts.MaxTotalBytes)
	}
	opts := e.opts.archiveOptions()
	opts.MaxTotalBytes = *budget
	files, err := archive.ReadTarGz(bytes.NewReader(data), opts)
	if err != nil {
		if prefix != "" {
			return nil, fmt.Errorf("subchart %s: %w", strings.TrimSuffix(prefix, "/"), err)
		}
		return nil, err
	}
	root := ""
	var out []archive.File
	for _, f := range files {
		top, rest, ok := strings.Cut(f.Name, "/")
		if !ok || rest == "" {
			return nil, fmt.Errorf("%w: entry %q is not inside the chart's directory", archive.ErrUnsafePath, prefix+f.Name)
		}
		if root == "" {
			root = top
		} else if top != root {
			return nil, fmt.Errorf("%w: entries %q and %q are in different top-level directories; a chart archive holds one chart", archive.ErrUnsafePath, prefix+root, prefix+top)
		}
		*budget -= int64(len(f.Data))
		if err := checkChartFile(prefix+rest, f.Data); err != nil {
			return nil, err
		}
		if dir, name := path.Split(rest); dir == "charts/" && strings.HasSuffix(name, ".tgz") {
			sub, err := e.unpack(f.Data, prefix+"charts/"+strings.TrimSuffix(name, ".tgz")+"/", depth+1, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, archive.File{Name: prefix + rest, Data: f.Data, Mode: f.Mode})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the archive holds no chart", archive.ErrCorrupt)
	}
	return out, nil
}

// checkChartFile checks the files Helm parses as YAML or JSON schema before
// Helm sees them. Templates are checked once rendered (see renderedObjects).
func checkChartFile(name string, data []byte) error {
	base := path.Base(name)
	dir := path.Dir(name)
	isYAML := strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml") || base == "Chart.lock" || base == "requirements.lock"
	inTemplates := dir == "templates" || strings.Contains(name, "/templates/") || strings.HasPrefix(name, "templates/")
	switch {
	case isYAML && !inTemplates:
		return archive.CheckYAML(name, data, archive.YAMLLimits{})
	case base == "values.schema.json":
		return checkSchemaRefs(name, data)
	}
	return nil
}

// checkSchemaRefs refuses a values schema that points outside itself:
// Helm's schema loader would follow file:// and http(s):// references,
// reading the agent's files or reaching its network.
func checkSchemaRefs(name string, data []byte) error {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: not valid JSON: %w", name, err)
	}
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth > 100 {
			return fmt.Errorf("%s: nested more than 100 levels", name)
		}
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok && isRefKeyword(k) && !localRef(k, s) {
					return fmt.Errorf("%s: %s %q points outside the schema; only references within it (\"#/...\") are allowed", name, k, s)
				}
				if err := walk(child, depth+1); err != nil {
					return err
				}
			}
		case []any:
			for _, child := range v {
				if err := walk(child, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(doc, 0)
}

func isRefKeyword(k string) bool {
	switch k {
	case "$ref", "$dynamicRef", "$recursiveRef", "$id", "$schema", "id":
		return true
	}
	return false
}

// localRef reports whether a reference keyword's value stays inside the
// document: a fragment for references, and for $schema one of the
// meta-schemas the validator carries built in.
func localRef(keyword, s string) bool {
	switch keyword {
	case "$schema":
		return strings.HasPrefix(s, "http://json-schema.org/") || strings.HasPrefix(s, "https://json-schema.org/")
	case "$id", "id":
		return !strings.Contains(s, ":") && !strings.Contains(s, "/")
	}
	return strings.HasPrefix(s, "#")
}
