package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// modTime is every archive entry's time, so that the same module packs to
// the same bytes.
var modTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchModule is one generated module: Resources terraform_data resources
// (the built-in provider, nothing to download) whose inputs come from the
// module's variables, no provisioners, and an output listing them. Each
// module of a run differs only in its variables, so both sides plan the
// same graph for every workspace.
type benchModule struct {
	// Workspace names its state: the agent's workspace, the CLI's
	// secret_suffix.
	Workspace string
	// Resources is how many terraform_data resources it declares.
	Resources int
	// Files are the module's files by name.
	Files map[string]string
	// Variables are the values of its input variables, as JSON.
	Variables map[string]json.RawMessage
	// Archive is Files packed as tar.gz, the task's inline module.
	Archive []byte
}

// newModule generates module i of a run with resources resources. A
// positive latency gives every resource a local-exec provisioner that
// sleeps that long when it is created, standing in for the cloud API a
// real provider would wait on.
func newModule(i, resources int, latency time.Duration) (*benchModule, error) {
	if resources < 1 {
		return nil, fmt.Errorf("module %d: want at least one resource, got %d", i, resources)
	}
	name := fmt.Sprintf("mod-%03d", i)
	m := &benchModule{
		Workspace: "tf-" + name,
		Resources: resources,
		Files: map[string]string{
			"versions.tf":  versionsTF,
			"variables.tf": variablesTF,
			"main.tf":      mainTF(resources, latency),
			"outputs.tf":   outputsTF(resources),
		},
	}
	labels, err := json.Marshal(map[string]string{"team": "bench", "module": name})
	if err != nil {
		return nil, err
	}
	m.Variables = map[string]json.RawMessage{
		"name":   json.RawMessage(fmt.Sprintf("%q", name)),
		"index":  json.RawMessage(fmt.Sprint(i)),
		"labels": labels,
	}
	if m.Archive, err = m.pack(); err != nil {
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	return m, nil
}

const versionsTF = `terraform {
  required_version = ">= 1.6.0"
}
`

const variablesTF = `variable "name" {
  type        = string
  description = "Prefix of every resource's name."
}

variable "index" {
  type        = number
  description = "The module's number in the benchmark."
}

variable "labels" {
  type        = map(string)
  description = "Labels carried by every resource."
  default     = {}
}
`

// mainTF declares n terraform_data resources, each with an input built from
// the variables and a replacement trigger on the module's number, and a
// provisioner sleeping latency when latency is positive.
func mainTF(n int, latency time.Duration) string {
	provisioner := "\n"
	if latency > 0 {
		provisioner = fmt.Sprintf("\n  provisioner \"local-exec\" {\n    command = \"sleep %.3f\"\n  }\n", latency.Seconds())
	}
	var b strings.Builder
	for r := range n {
		if r > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, `resource "terraform_data" "r%d" {
  input = {
    name   = "${var.name}-r%d"
    index  = var.index
    slot   = %d
    labels = merge(var.labels, { resource = "r%d" })
  }
  triggers_replace = [var.index]%s}
`, r, r, r, r, provisioner)
	}
	return b.String()
}

// outputsTF declares the names of every resource as one output.
func outputsTF(n int) string {
	refs := make([]string, n)
	for r := range n {
		refs[r] = fmt.Sprintf("terraform_data.r%d.output.name", r)
	}
	return fmt.Sprintf("output \"names\" {\n  value = [%s]\n}\n", strings.Join(refs, ", "))
}

// pack returns Files as a tar.gz archive, in name order.
func (m *benchModule) pack() ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range m.names() {
		body := m.Files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: modTime, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeDir writes the module into dir for the CLI: its files, its variables
// as terraform.tfvars.json (which the CLI loads by itself) and extra files
// such as the backend override.
func (m *benchModule) writeDir(dir string, extra map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	vars, err := json.Marshal(m.Variables)
	if err != nil {
		return err
	}
	files := map[string][]byte{"terraform.tfvars.json": vars}
	for name, body := range m.Files {
		files[name] = []byte(body)
	}
	for name, body := range extra {
		files[name] = body
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (m *benchModule) names() []string {
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// bytes is the size of the module's files.
func (m *benchModule) bytes() int {
	n := 0
	for _, body := range m.Files {
		n += len(body)
	}
	return n
}

// backendOverride is the override file that puts a module's state in the
// kubernetes backend, as the executor writes it: a Secret
// tfstate-default-<suffix> and its lock Lease in namespace, reached
// through kubeconfig.
func backendOverride(namespace, suffix, kubeconfig string) ([]byte, error) {
	return json.Marshal(map[string]any{"terraform": map[string]any{"backend": map[string]any{
		"kubernetes": map[string]any{"secret_suffix": suffix, "namespace": namespace, "config_path": kubeconfig},
	}}})
}
