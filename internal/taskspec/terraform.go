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

// Approval policies of a terraform spec: when a plan waits for an
// operator's approval instead of being applied.
const (
	// ApprovalNever applies every plan (the default, "").
	ApprovalNever = "never"
	// ApprovalDestroy holds a plan that destroys or replaces anything.
	ApprovalDestroy = "destroy"
	// ApprovalAlways holds every plan that changes something.
	ApprovalAlways = "always"
)

var terraformApprovals = []string{ApprovalNever, ApprovalDestroy, ApprovalAlways}

// PlanDigestPrefix starts a plan digest: "sha256:" and 64 hex digits.
const PlanDigestPrefix = "sha256:"

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
	// URL is an https:// URL of a tar.gz module archive, or an OCI
	// artifact "oci://host/repository:tag" or
	// "oci://host/repository@sha256:<digest>" whose layer is one.
	URL string `json:"url,omitempty"`
	// Username and Password authenticate to an oci:// registry. Password
	// must be a vault reference; Username may be one.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// PlainHTTP reaches an oci:// registry over plain HTTP (a registry on
	// the agent's own host or network).
	PlainHTTP bool `json:"plain_http,omitempty"`
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
	// Approval is when an apply or destroy stops after its plan and waits
	// for an operator: never (the default), destroy or always. A held plan
	// is reported with AwaitingApproval and nothing is changed.
	Approval string `json:"approval,omitempty"`
	// ApprovedPlan is the digest of the plan an operator approved. A plan
	// the policy would hold is applied only when its digest equals this.
	ApprovedPlan string `json:"approved_plan,omitempty"`
}

// TerraformResult is the JSON document a terraform task reports.
type TerraformResult struct {
	// Action is what ran: plan, apply or destroy.
	Action string `json:"action"`
	// Workspace names the state.
	Workspace string `json:"workspace"`
	// Plan summarizes the plan that was made (and, unless Action is plan
	// or AwaitingApproval is set, applied).
	Plan TerraformPlanSummary `json:"plan"`
	// AwaitingApproval reports a plan the approval policy held: nothing
	// was applied.
	AwaitingApproval bool `json:"awaiting_approval,omitempty"`
	// Outputs are the module's outputs after an apply, sensitive ones
	// replaced by "[REDACTED]", at most MaxTerraformOutputsBytes encoded.
	Outputs map[string]json.RawMessage `json:"outputs,omitempty"`
	// OutputsOmitted names the outputs left out to keep within
	// MaxTerraformOutputsBytes.
	OutputsOmitted []string `json:"outputs_omitted,omitempty"`
	// Changed reports whether the run changed anything.
	Changed bool `json:"changed"`
}

// TerraformPlanSummary counts the resource changes of a plan, as the CLI
// does: a replacement counts as one add and one destroy.
type TerraformPlanSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	// Resources lists the resources that change, in plan order.
	Resources []TerraformResourceChange `json:"resources,omitempty"`
	// HasChanges is the CLI's own verdict, which also counts changes of
	// outputs alone.
	HasChanges bool `json:"has_changes"`
	// Omitted counts the changed resources left out of Resources, which
	// is capped (MaxPlanResources); counts and Digest cover them all.
	Omitted int `json:"omitted,omitempty"`
	// Digest identifies the plan: its changes (addresses and actions),
	// the module archive and the plain variables it was made from, never
	// a value of a sensitive one. It is what an operator approves.
	Digest string `json:"digest,omitempty"`
}

// MaxPlanResources caps TerraformPlanSummary.Resources.
const MaxPlanResources = 1000

// MaxTerraformOutputsBytes caps the encoded outputs of a result; larger
// outputs are left out (TerraformResult.OutputsOmitted).
const MaxTerraformOutputsBytes = 64 << 10

// TerraformResourceChange is one resource a plan changes.
type TerraformResourceChange struct {
	// Address is the resource's address, e.g. "module.db.aws_db_instance.main".
	Address string `json:"address"`
	// Action is create, update, delete or replace.
	Action string `json:"action"`
}

// Resource change actions.
const (
	ResourceCreate  = "create"
	ResourceUpdate  = "update"
	ResourceDelete  = "delete"
	ResourceReplace = "replace"
)

// Holds reports whether the approval policy holds a plan summarized by p.
func (s *Terraform) Holds(p TerraformPlanSummary) bool {
	switch s.Approval {
	case ApprovalAlways:
		return p.HasChanges
	case ApprovalDestroy:
		return p.Destroy > 0
	}
	return false
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
	case s.Approval != "" && !slices.Contains(terraformApprovals, s.Approval):
		return fmt.Errorf("approval %q: want one of %s", s.Approval, strings.Join(terraformApprovals, ", "))
	case s.ApprovedPlan != "" && !IsPlanDigest(s.ApprovedPlan):
		return fmt.Errorf("approved_plan %q: want %s followed by 64 lower-case hex digits", truncateForError(s.ApprovedPlan), PlanDigestPrefix)
	}
	return nil
}

// IsPlanDigest reports whether s is a plan digest: "sha256:" and 64
// lower-case hex digits.
func IsPlanDigest(s string) bool {
	return IsArtifactDigest(s) && strings.HasPrefix(s, PlanDigestPrefix)
}

func truncateForError(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
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
		if s.Username != "" || s.Password != "" || s.PlainHTTP {
			return fmt.Errorf("username, password and plain_http: only with an oci:// url")
		}
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
		return fmt.Errorf("url: carries credentials in the URL; use username and password with vault references for a registry")
	}
	switch {
	case u.Scheme == "oci":
		if _, err := ParseOCIModuleRef(s.URL); err != nil {
			return err
		}
		return validateRegistryCredentials(s.Username, s.Password)
	case u.Scheme != "https" || u.Host == "" || u.Fragment != "":
		return fmt.Errorf("url %q: want https://host/path of a tar.gz archive without fragment, or oci://host/repository:tag", s.URL)
	case s.Username != "" || s.Password != "" || s.PlainHTTP:
		return fmt.Errorf("username, password and plain_http: only with an oci:// url; https module archives are fetched without credentials")
	}
	return nil
}

// OCIModuleRef is an oci:// module source split into the registry
// reference ("host/repository:tag" or "host/repository@sha256:…").
type OCIModuleRef struct {
	// Reference is the URL without its "oci://" scheme.
	Reference string
}

// ParseOCIModuleRef checks an oci:// module URL: a host, a repository path
// and a tag or digest, no query or fragment.
func ParseOCIModuleRef(raw string) (OCIModuleRef, error) {
	rest, ok := strings.CutPrefix(raw, "oci://")
	if !ok {
		return OCIModuleRef{}, fmt.Errorf("url %q: want oci://host/repository:tag", raw)
	}
	host, repo, ok := strings.Cut(rest, "/")
	if !ok || host == "" || repo == "" || strings.ContainsAny(rest, "?# \t\n") {
		return OCIModuleRef{}, fmt.Errorf("url %q: want oci://host/repository:tag or oci://host/repository@sha256:<digest>", raw)
	}
	name, digest, byDigest := strings.Cut(repo, "@")
	tag := ""
	if !byDigest {
		if i := strings.LastIndex(repo, ":"); i > 0 {
			name, tag = repo[:i], repo[i+1:]
		}
	}
	switch {
	case byDigest && !IsArtifactDigest(digest):
		return OCIModuleRef{}, fmt.Errorf("url %q: digest: want sha256: followed by 64 lower-case hex digits", raw)
	case !byDigest && tag == "":
		return OCIModuleRef{}, fmt.Errorf("url %q: name a tag or a digest (oci://host/repository:tag); a moving default tag is not assumed", raw)
	case !isRepositoryPath(name):
		return OCIModuleRef{}, fmt.Errorf("url %q: repository %q: want lower-case path components of letters, digits, '.', '_' and '-'", raw, name)
	case !byDigest && !isTag(tag):
		return OCIModuleRef{}, fmt.Errorf("url %q: tag %q: want letters, digits, '_', '.' and '-', at most 128", raw, tag)
	}
	return OCIModuleRef{Reference: rest}, nil
}

func isRepositoryPath(s string) bool {
	for _, part := range strings.Split(s, "/") {
		if part == "" || part[0] == '.' || part[0] == '-' || part[0] == '_' {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			lower := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			if !lower {
				return false
			}
		}
	}
	return true
}

func isTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// validateRegistryCredentials checks a registry's username and password:
// both or neither, the password a vault reference.
func validateRegistryCredentials(username, password string) error {
	if (username == "") != (password == "") {
		return fmt.Errorf("username and password: give both or neither")
	}
	if password != "" {
		if _, err := vault.ParseRef(password); err != nil {
			return fmt.Errorf("password: must be a vault reference (vault://<provider>/<path>/<key>), never the password itself")
		}
	}
	if strings.HasPrefix(strings.TrimSpace(username), vault.Scheme) {
		if _, err := vault.ParseRef(username); err != nil {
			return fmt.Errorf("username: %w", err)
		}
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
