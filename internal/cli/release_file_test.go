package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRelease writes a release file into dir and returns its path.
func writeRelease(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const releaseHeader = `apiVersion: outpost.dev/v1
kind: Release
metadata:
  name: web
  environment: prod
`

func TestReleaseFileRefusals(t *testing.T) {
	t.Parallel()
	bundle := "    bundle: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: settings}\n"
	tests := []struct {
		name    string
		content string
		args    []string
		want    []string
	}{
		{
			name:    "an unknown field is named with its line and section",
			content: releaseHeader + "spec:\n  manifests:\n    namespace: shop\n    filez: [a.yaml]\n",
			want:    []string{"release.yaml:9:", `unknown field "filez" in spec.manifests`},
		},
		{
			name:    "an unknown top-level field is refused too",
			content: releaseHeader + "status: {}\nspec:\n  manifests:\n" + bundle,
			want:    []string{"release.yaml:6:", `unknown field "status"`},
		},
		{
			name:    "a release with both manifests and helm is refused",
			content: releaseHeader + "spec:\n  helm: {chart: ./chart, namespace: shop}\n  manifests:\n" + bundle,
			want:    []string{"more than one of manifests, helm and terraform"},
		},
		{
			name:    "a release with neither manifests, helm nor terraform is refused",
			content: releaseHeader + "spec:\n  mode: detect\n",
			want:    []string{"spec needs manifests", "helm", "or terraform"},
		},
		{
			name:    "an unknown mode is refused with the modes there are",
			content: releaseHeader + "spec:\n  mode: fix\n  manifests:\n" + bundle,
			want:    []string{`spec.mode: "fix"`, "correct", "detect"},
		},
		{
			name:    "an ignore path that is not a JSON pointer is refused",
			content: releaseHeader + "spec:\n  ignore:\n    - {group: apps, kind: Deployment, paths: [spec/replicas]}\n  manifests:\n" + bundle,
			want:    []string{"spec.ignore[0]", `"spec/replicas" is not a JSON pointer to a field`, "start with /"},
		},
		{
			name:    "a JSON pointer with a bad escape is refused",
			content: releaseHeader + "spec:\n  ignore:\n    - {paths: [/metadata/annotations/a~2b]}\n  manifests:\n" + bundle,
			want:    []string{"~ must be written ~0"},
		},
		{
			name:    "a JSON pointer with an empty token is refused",
			content: releaseHeader + "spec:\n  ignore:\n    - {paths: [/spec//replicas]}\n  manifests:\n" + bundle,
			want:    []string{`"/spec//replicas" has an empty token`},
		},
		{
			name:    "an ignore rule without paths is refused",
			content: releaseHeader + "spec:\n  ignore:\n    - {kind: Deployment}\n  manifests:\n" + bundle,
			want:    []string{"spec.ignore[0]: paths: give at least one"},
		},
		{
			name:    "a name that is not a DNS label is refused",
			content: strings.Replace(releaseHeader, "name: web", "name: Web_1", 1) + "spec:\n  manifests:\n" + bundle,
			want:    []string{"metadata.name", `"Web_1"`, "DNS-1123"},
		},
		{
			name:    "a name longer than 53 characters is refused",
			content: strings.Replace(releaseHeader, "name: web", "name: "+strings.Repeat("a", 54), 1) + "spec:\n  manifests:\n" + bundle,
			want:    []string{"metadata.name", "at most 53"},
		},
		{
			name:    "another apiVersion or kind is refused",
			content: strings.Replace(releaseHeader, "kind: Release", "kind: Deployment", 1) + "spec:\n  manifests:\n" + bundle,
			want:    []string{`kind "Deployment"`, "outpost.dev/v1", "Release"},
		},
		{
			name:    "a release naming no environment, without --env, is refused",
			content: strings.Replace(releaseHeader, "  environment: prod\n", "", 1) + "spec:\n  manifests:\n" + bundle,
			want:    []string{"names no environment", "metadata.environment", "--env"},
		},
		{
			name:    "--env contradicting the file is refused",
			content: releaseHeader + "spec:\n  manifests:\n" + bundle,
			args:    []string{"--env", "staging"},
			want:    []string{"names environment prod, --env says staging"},
		},
		{
			name:    "a helm password that is not a vault reference is refused without repeating it",
			content: releaseHeader + "spec:\n  helm:\n    repo: https://charts.example\n    chart: web\n    namespace: shop\n    username: u\n    password: hunter2\n",
			want:    []string{"spec.helm.password must be a vault reference"},
		},
		{
			name:    "a helm release without a namespace is refused",
			content: releaseHeader + "spec:\n  helm:\n    chart: ./chart\n",
			want:    []string{"spec.helm.namespace: is required"},
		},
		{
			name:    "a helm timeout that is not a duration is refused",
			content: releaseHeader + "spec:\n  helm:\n    chart: oci://r.example/c/web\n    namespace: shop\n    timeout: soon\n",
			want:    []string{`spec.helm.timeout "soon"`},
		},
		{
			name:    "manifests with both files and bundle are refused",
			content: releaseHeader + "spec:\n  manifests:\n    files: [a.yaml]\n" + bundle,
			want:    []string{"give files or bundle, not both"},
		},
		{
			name:    "a bundle file that does not exist is named",
			content: releaseHeader + "spec:\n  manifests:\n    files: [missing.yaml]\n",
			want:    []string{"spec.manifests.files", "missing.yaml"},
		},
		{
			name:    "a release defined twice in one file is refused",
			content: releaseHeader + "spec:\n  manifests:\n" + bundle + "---\n" + releaseHeader + "spec:\n  manifests:\n" + bundle,
			want:    []string{"release web in prod is also defined in", "release.yaml (document 1)"},
		},
		{
			name:    "a wrongly typed value is reported with its line",
			content: releaseHeader + "spec:\n  manifests:\n    adopt: sometimes\n" + bundle,
			want:    []string{"release.yaml:8:", "sometimes"},
		},
		{
			name:    "a file that does not parse is reported with its line",
			content: releaseHeader + "spec:\n  manifests: [\n",
			want:    []string{"release.yaml:7:", "did not find expected node content"},
		},
		{
			name:    "a terraform release with helm too is refused",
			content: releaseHeader + "spec:\n  helm: {chart: oci://r.example/c/web, namespace: shop}\n  terraform: {url: https://example.com/m.tar.gz}\n",
			want:    []string{"more than one of manifests, helm and terraform"},
		},
		{
			name:    "a terraform release with two module sources is refused",
			content: releaseHeader + "spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    artifact: sha256:" + strings.Repeat("a", 64) + "\n",
			want:    []string{"spec.terraform: give exactly one of module"},
		},
		{
			name:    "a terraform release on another workspace is refused",
			content: releaseHeader + "spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    workspace: other\n",
			want:    []string{`spec.terraform.workspace "other"`, "one workspace"},
		},
		{
			name:    "a secret given as a sensitive variable is refused without repeating it",
			content: releaseHeader + "spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    sensitiveVariables: {db_password: hunter2}\n",
			want:    []string{"sensitive_variables.db_password", "vault reference"},
		},
		{
			name:    "an unknown approval policy is refused",
			content: releaseHeader + "spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    approval: sometimes\n",
			want:    []string{`approval "sometimes"`},
		},
		{
			name:    "a module directory without .tf files is refused",
			content: releaseHeader + "spec:\n  terraform:\n    module: .\n",
			want:    []string{"spec.terraform.module .", "not a Terraform module"},
		},
		{
			name:    "an unknown terraform field is named with its section",
			content: releaseHeader + "spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    backend: s3\n",
			want:    []string{`unknown field "backend" in spec.terraform`},
		},
		{
			name:    "an empty file holds no release",
			content: "---\n",
			want:    []string{"holds no release"},
		},
		{
			name:    "a file larger than 4 MiB is refused before it is parsed",
			content: releaseHeader + "# " + strings.Repeat("x", maxReleaseFileBytes) + "\n",
			want:    []string{"larger than 4 MiB"},
		},
		{
			name:    "an alias bomb is refused",
			content: "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
			want:    []string{"invalid release file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			path := writeRelease(t, h.dir, "release.yaml", tt.content)
			r := h.run(append([]string{"release", "apply", "-f", path}, tt.args...)...)
			assertErrorContains(t, r.err, tt.want...)
			if !errors.Is(r.err, ErrInvalidReleaseFile) {
				t.Errorf("error %v does not wrap ErrInvalidReleaseFile", r.err)
			}
			if strings.Contains(r.err.Error(), "hunter2") {
				t.Errorf("error repeats the password: %v", r.err)
			}
			if n := len(h.hub.appliedRequests()); n != 0 {
				t.Errorf("the hub got %d ApplyRelease calls, want none", n)
			}
		})
	}
}

func FuzzParseReleaseFile(f *testing.F) {
	f.Add([]byte(releaseHeader + "spec:\n  manifests:\n    files: [a.yaml]\n"))
	f.Add([]byte(releaseHeader + "spec:\n  helm: {chart: x, namespace: y, set: [a=b]}\n---\n"))
	f.Add([]byte("a: &a [x]\nb: [*a, *a]\n"))
	f.Add([]byte(releaseHeader + "spec:\n  terraform:\n    module: infra\n    variables: {a: [1, {b: c}]}\n    sensitiveVariables: {p: vault://k/p/x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := parseReleaseFile("fuzz.yaml", data)
		if err == nil && len(docs) == 0 {
			t.Fatal("no error and no release")
		}
		if err != nil && !errors.Is(err, ErrInvalidReleaseFile) {
			t.Fatalf("error %v does not wrap ErrInvalidReleaseFile", err)
		}
	})
}
