package taskspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/outposthq/outpost/internal/vault"
)

// KindTerraform runs an OpenTofu/Terraform module through the CLI: plan,
// apply or destroy, with its state in the cluster.
//
// It is not in the kinds registry yet: it is registered there when the
// agent runs it, so the hub never accepts tasks no agent can execute.
const KindTerraform = "terraform"

// Terraform actions.
const (
	// TerraformPlan plans and reports the changes without making them.
	TerraformPlan = "plan"
	// TerraformApply plans, then applies that plan.
	TerraformApply = "apply"
	// TerraformDestroy plans the destruction of everything in the
	// workspace's state, then applies that plan.
	TerraformDestroy = "destroy"
)

// Bounds and defaults of a terraform spec.
const (
	// MaxInlineModuleBytes caps an inline module archive once decoded;
	// larger modules travel as artifacts.
	MaxInlineModuleBytes = MaxInlineChartBytes
	// MaxTerraformVariables caps Variables and SensitiveVariables together.
	MaxTerraformVariables = 256
	// MaxTerraformVariableNameLength caps a variable's name.
	MaxTerraformVariableNameLength = 128
	// MaxTerraformVariablesBytes caps the encoded plain values together.
	MaxTerraformVariablesBytes = 256 << 10
	// MaxModulePathLength caps Path.
	MaxModulePathLength = 1024
	// DefaultTerraformTimeoutSeconds applies when TimeoutSeconds is 0.
	DefaultTerraformTimeoutSeconds = 1800
	// MaxTerraformTimeoutSeconds caps TimeoutSeconds.
	MaxTerraformTimeoutSeconds = 4 * 3600
	// DefaultTerraformParallelism applies when Parallelism is 0 (the CLI's
	// own default).
	DefaultTerraformParallelism = 10
	// MaxTerraformParallelism caps Parallelism.
	MaxTerraformParallelism = 64
)

var terraformActions = []string{TerraformPlan, TerraformApply, TerraformDestroy}

// Terraform is the spec of a terraform task: one action on one workspace.
// The module comes from exactly one of Archive, Artifact and URL. Where the
// state lives (the kubernetes backend, with the workspace as its secret
// suffix) is the agent's configuration, never the spec's.
type Terraform struct {
	// Action is one of plan, apply (the default) and destroy.
	Action string `json:"action,omitempty"`
	// Workspace names the state: a DNS-1123 label. Tasks on the same
	// workspace are serialized.
	Workspace string `json:"workspace"`
	// Archive is the module as a tar.gz archive, base64-encoded, of at most
	// MaxInlineModuleBytes once decoded.
	Archive []byte `json:"archive,omitempty"`
	// Artifact references a tar.gz module archive among the task's
	// artifacts ("sha256:<64 hex digits>").
	Artifact string `json:"artifact,omitempty"`
	// URL is an https:// URL of a tar.gz module archive.
	URL string `json:"url,omitempty"`
	// Path is the module's directory inside the archive: relative,
	// slash-separated, without "." or ".." elements. Empty means the
	// archive's root.
	Path string `json:"path,omitempty"`
	// Variables are the module's plain input variables, as JSON values.
	Variables map[string]json.RawMessage `json:"variables,omitempty"`
	// SensitiveVariables are input variables whose values are secrets:
	// each value is a vault reference (vault://<provider>/<path>/<key>)
	// the agent resolves, never the secret itself.
	SensitiveVariables map[string]string `json:"sensitive_variables,omitempty"`
	// TimeoutSeconds bounds the whole run; 0 means
	// DefaultTerraformTimeoutSeconds.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Parallelism bounds the resource operations the CLI runs at once; 0
	// means DefaultTerraformParallelism.
	Parallelism int `json:"parallelism,omitempty"`
}

var _ Spec = (*Terraform)(nil)

// EffectiveAction returns Action, or TerraformApply when it is empty.
func (s *Terraform) EffectiveAction() string {
	if s.Action == "" {
		return TerraformApply
	}
	return s.Action
}

// Timeout returns the effective timeout in seconds.
func (s *Terraform) Timeout() int {
	if s.TimeoutSeconds == 0 {
		return DefaultTerraformTimeoutSeconds
	}
	return s.TimeoutSeconds
}

// EffectiveParallelism returns the effective parallelism.
func (s *Terraform) EffectiveParallelism() int {
	if s.Parallelism == 0 {
		return DefaultTerraformParallelism
	}
	return s.Parallelism
}

// ConflictKey is the key the hub serializes tasks on the same workspace by.
func (s *Terraform) ConflictKey() string { return "tf/" + s.Workspace }

// Validate checks every field and names the first one at fault.
func (s *Terraform) Validate() error {
	if !slices.Contains(terraformActions, s.EffectiveAction()) {
		return fmt.Errorf("action %q: want one of %s", s.Action, strings.Join(terraformActions, ", "))
	}
	if s.Workspace == "" {
		return fmt.Errorf("workspace: is required")
	}
	if !IsDNSLabel(s.Workspace) {
		return fmt.Errorf("workspace %q: want a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit) of at most 63 characters", s.Workspace)
	}
	if err := s.validateSource(); err != nil {
		return err
	}
	if err := validateModulePath(s.Path); err != nil {
		return err
	}
	if err := s.validateVariables(); err != nil {
		return err
	}
	switch {
	case s.TimeoutSeconds < 0 || s.TimeoutSeconds > MaxTerraformTimeoutSeconds:
		return fmt.Errorf("timeout_seconds %d: want 0 (default %d) up to %d", s.TimeoutSeconds, DefaultTerraformTimeoutSeconds, MaxTerraformTimeoutSeconds)
	case s.Parallelism < 0 || s.Parallelism > MaxTerraformParallelism:
		return fmt.Errorf("parallelism %d: want 0 (default %d) up to %d", s.Parallelism, DefaultTerraformParallelism, MaxTerraformParallelism)
	}
	return nil
}

func (s *Terraform) validateSource() error {
	sources := 0
	for _, set := range []bool{len(s.Archive) > 0, s.Artifact != "", s.URL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return fmt.Errorf("archive, artifact, url: give exactly one module source")
	}
	if len(s.Archive) > MaxInlineModuleBytes {
		return fmt.Errorf("archive: %d bytes, larger than %d; send it as an artifact", len(s.Archive), MaxInlineModuleBytes)
	}
	if s.Artifact != "" && !IsArtifactDigest(s.Artifact) {
		return fmt.Errorf("artifact %q: want %s followed by 64 lower-case hex digits", s.Artifact, ArtifactDigestPrefix)
	}
	if s.URL == "" {
		return nil
	}
	if len(s.URL) > MaxURLLength {
		return fmt.Errorf("url: longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("url: not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("url: carries credentials in the URL; module archives are fetched without credentials")
	}
	if u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("url %q: want https://host/path of a tar.gz archive, without fragment", s.URL)
	}
	return nil
}

// validateModulePath accepts "" or a clean, relative, slash-separated path.
func validateModulePath(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > MaxModulePathLength {
		return fmt.Errorf("path: longer than %d bytes", MaxModulePathLength)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' || c == ':' {
			return fmt.Errorf("path %q: want a relative slash-separated directory without control characters, backslashes or colons", p)
		}
	}
	if strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("path %q: want a clean relative directory inside the archive (no leading '/', no '.' or '..' elements, no trailing '/')", p)
	}
	return nil
}

func (s *Terraform) validateVariables() error {
	if n := len(s.Variables) + len(s.SensitiveVariables); n > MaxTerraformVariables {
		return fmt.Errorf("variables, sensitive_variables: %d variables, more than %d", n, MaxTerraformVariables)
	}
	total := 0
	for _, name := range sortedKeys(s.Variables) {
		if !IsTerraformVariableName(name) {
			return fmt.Errorf("variables: name %q: want a letter or '_' followed by letters, digits and '_', at most %d characters", name, MaxTerraformVariableNameLength)
		}
		v := bytes.TrimSpace(s.Variables[name])
		total += len(v)
		if total > MaxTerraformVariablesBytes {
			return fmt.Errorf("variables: larger than %d bytes", MaxTerraformVariablesBytes)
		}
		if len(v) == 0 || !json.Valid(v) {
			return fmt.Errorf("variables.%s: want a JSON value", name)
		}
	}
	for _, name := range sortedKeys(s.SensitiveVariables) {
		if !IsTerraformVariableName(name) {
			return fmt.Errorf("sensitive_variables: name %q: want a letter or '_' followed by letters, digits and '_', at most %d characters", name, MaxTerraformVariableNameLength)
		}
		if _, ok := s.Variables[name]; ok {
			return fmt.Errorf("sensitive_variables.%s: also in variables; give each variable once", name)
		}
		// The value is not quoted: a secret pasted here by mistake must not
		// reach an error message.
		if _, err := vault.ParseRef(s.SensitiveVariables[name]); err != nil {
			return fmt.Errorf("sensitive_variables.%s: must be a vault reference (vault://<provider>/<path>/<key>[/vN]), never the secret itself", name)
		}
	}
	return nil
}

// IsTerraformVariableName reports whether s can name an input variable
// that also travels safely as an environment variable (TF_VAR_<name>): an
// ASCII letter or '_' followed by letters, digits and '_'.
func IsTerraformVariableName(s string) bool {
	if s == "" || len(s) > MaxTerraformVariableNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
