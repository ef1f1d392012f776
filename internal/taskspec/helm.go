package taskspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/vault"
)

// KindHelm installs, upgrades, rolls back and uninstalls Helm releases with
// the Helm 4 SDK.
const KindHelm = "helm"

// Helm actions.
const (
	// HelmInstall installs the release, or upgrades it when it exists
	// (helm upgrade --install).
	HelmInstall = "install"
	// HelmUpgrade upgrades an existing release and fails when there is
	// none.
	HelmUpgrade = "upgrade"
	// HelmRollback rolls the release back to Revision (0: the previous
	// one).
	HelmRollback = "rollback"
	// HelmUninstall removes the release and its objects.
	HelmUninstall = "uninstall"
	// HelmStatus reports the release's current revision and objects.
	HelmStatus = "status"
	// HelmHistory reports the release's revisions.
	HelmHistory = "history"
)

// Bounds and defaults of a helm spec.
const (
	// MaxHelmValuesBytes caps the encoded values.
	MaxHelmValuesBytes = 256 << 10
	// MaxInlineChartBytes caps an inline chart archive once decoded; larger
	// charts travel as artifacts.
	MaxInlineChartBytes = 256 << 10
	// DefaultHelmTimeoutSeconds applies when TimeoutSeconds is 0.
	DefaultHelmTimeoutSeconds = 300
	// MaxHelmTimeoutSeconds caps TimeoutSeconds.
	MaxHelmTimeoutSeconds = 3600
	// DefaultHelmHistoryMax applies when HistoryMax is 0.
	DefaultHelmHistoryMax = 10
	// MaxHelmHistoryMax caps HistoryMax.
	MaxHelmHistoryMax = 1000
	// MaxChartVersionLength caps Chart.Version.
	MaxChartVersionLength = 128
)

var helmActions = []string{HelmInstall, HelmUpgrade, HelmRollback, HelmUninstall, HelmStatus, HelmHistory}

// Helm is the spec of a helm task: one action on one release.
type Helm struct {
	// Action is one of install (the default: upgrade --install), upgrade,
	// rollback, uninstall, status, history.
	Action string `json:"action,omitempty"`
	// Release names the Helm release: a DNS-1123 label of at most
	// MaxReleaseLength characters.
	Release string `json:"release"`
	// Namespace is the release's namespace. Required.
	Namespace string `json:"namespace"`
	// Chart says where the chart comes from; required for install and
	// upgrade, not allowed otherwise.
	Chart *HelmChart `json:"chart,omitempty"`
	// Values is a JSON object merged over the chart's values.
	Values json.RawMessage `json:"values,omitempty"`
	// CreateNamespace creates Namespace when it is missing.
	CreateNamespace bool `json:"create_namespace,omitempty"`
	// Wait waits until the release's workloads are ready (and, with hooks,
	// hook Jobs complete) before the task succeeds.
	Wait bool `json:"wait,omitempty"`
	// TimeoutSeconds bounds each Kubernetes operation and the wait; 0 means
	// DefaultHelmTimeoutSeconds.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Atomic rolls a failed upgrade back (and uninstalls a failed first
	// install). As with helm --atomic, it implies Wait.
	Atomic bool `json:"atomic,omitempty"`
	// HistoryMax caps the revisions kept; 0 means DefaultHelmHistoryMax.
	HistoryMax int `json:"history_max,omitempty"`
	// Adopt lets the release take over existing objects that belong to no
	// Helm release or another one; otherwise such objects fail the task
	// before anything is written.
	Adopt bool `json:"adopt,omitempty"`
	// Revision is the revision a rollback returns to; 0 means the one
	// before the current. Only for rollback.
	Revision int `json:"revision,omitempty"`
	// DisableHooks skips the chart's hooks.
	DisableHooks bool `json:"disable_hooks,omitempty"`
	// SkipCRDs skips the chart's crds/ directory.
	SkipCRDs bool `json:"skip_crds,omitempty"`
	// KeepHistory keeps the release's records on uninstall, so it can be
	// rolled back.
	KeepHistory bool `json:"keep_history,omitempty"`
	// Description is recorded with the revision.
	Description string `json:"description,omitempty"`
}

// HelmChart locates a chart: exactly one of Archive, Artifact and
// Repository.
type HelmChart struct {
	// Archive is a chart archive (.tgz), base64-encoded, of at most
	// MaxInlineChartBytes once decoded.
	Archive []byte `json:"archive,omitempty"`
	// Artifact references a chart archive among the task's artifacts
	// ("sha256:<64 hex digits>").
	Artifact string `json:"artifact,omitempty"`
	// Repository is an HTTP(S) chart repository URL (with Name), or an OCI
	// reference "oci://host/path/chart" (without Name).
	Repository string `json:"repository,omitempty"`
	// Name is the chart's name in an HTTP(S) repository.
	Name string `json:"name,omitempty"`
	// Version is an exact version or a semver constraint; empty means the
	// latest stable version. Only with Repository.
	Version string `json:"version,omitempty"`
	// Username and Password authenticate to the repository or registry.
	// Password must be a vault reference; Username may be one.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// CA is a PEM bundle of extra certificate authorities for the
	// repository.
	CA string `json:"ca,omitempty"`
	// PlainHTTP reaches an OCI registry over plain HTTP (a registry on the
	// agent's own host or network).
	PlainHTTP bool `json:"plain_http,omitempty"`
}

var _ Spec = (*Helm)(nil)

// EffectiveAction returns Action, or HelmInstall when it is empty.
func (s *Helm) EffectiveAction() string {
	if s.Action == "" {
		return HelmInstall
	}
	return s.Action
}

// Timeout returns the effective timeout in seconds.
func (s *Helm) Timeout() int {
	if s.TimeoutSeconds == 0 {
		return DefaultHelmTimeoutSeconds
	}
	return s.TimeoutSeconds
}

// Waits reports whether the task waits for readiness: when asked to, and
// when it is atomic.
func (s *Helm) Waits() bool { return s.Wait || s.Atomic }

// EffectiveHistoryMax returns the number of revisions kept.
func (s *Helm) EffectiveHistoryMax() int {
	if s.HistoryMax == 0 {
		return DefaultHelmHistoryMax
	}
	return s.HistoryMax
}

// ConflictKey is the key the hub serializes tasks on the same release by.
func (s *Helm) ConflictKey() string { return "helm/" + s.Namespace + "/" + s.Release }

// Validate checks every field and names the first one at fault.
func (s *Helm) Validate() error {
	action := s.EffectiveAction()
	if !slices.Contains(helmActions, action) {
		return fmt.Errorf("action %q: want one of %s", s.Action, strings.Join(helmActions, ", "))
	}
	if s.Release == "" {
		return fmt.Errorf("release: is required")
	}
	if len(s.Release) > MaxReleaseLength || !IsDNSLabel(s.Release) {
		return fmt.Errorf("release %q: want a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit) of at most %d characters", s.Release, MaxReleaseLength)
	}
	if s.Namespace == "" {
		return fmt.Errorf("namespace: is required")
	}
	if !IsDNSLabel(s.Namespace) {
		return fmt.Errorf("namespace %q: want a DNS-1123 label of at most 63 characters", s.Namespace)
	}
	deploys := action == HelmInstall || action == HelmUpgrade
	switch {
	case deploys && s.Chart == nil:
		return fmt.Errorf("chart: is required for %s", action)
	case !deploys && s.Chart != nil:
		return fmt.Errorf("chart: not allowed for %s", action)
	case !deploys && len(s.Values) > 0:
		return fmt.Errorf("values: not allowed for %s", action)
	case s.Revision < 0:
		return fmt.Errorf("revision %d: want 0 (the previous revision) or more", s.Revision)
	case s.Revision != 0 && action != HelmRollback:
		return fmt.Errorf("revision: only for rollback")
	case s.TimeoutSeconds < 0 || s.TimeoutSeconds > MaxHelmTimeoutSeconds:
		return fmt.Errorf("timeout_seconds %d: want 0 (default %d) up to %d", s.TimeoutSeconds, DefaultHelmTimeoutSeconds, MaxHelmTimeoutSeconds)
	case s.HistoryMax < 0 || s.HistoryMax > MaxHelmHistoryMax:
		return fmt.Errorf("history_max %d: want 0 (default %d) up to %d", s.HistoryMax, DefaultHelmHistoryMax, MaxHelmHistoryMax)
	case len(s.Description) > 1024:
		return fmt.Errorf("description: longer than 1024 bytes")
	case s.KeepHistory && action != HelmUninstall:
		return fmt.Errorf("keep_history: only for uninstall")
	}
	if err := validateValues(s.Values); err != nil {
		return err
	}
	if s.Chart != nil {
		if err := s.Chart.validate(); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	return nil
}

func validateValues(v json.RawMessage) error {
	if len(v) == 0 {
		return nil
	}
	if len(v) > MaxHelmValuesBytes {
		return fmt.Errorf("values: %d bytes, larger than %d", len(v), MaxHelmValuesBytes)
	}
	trimmed := bytes.TrimSpace(v)
	if bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("values: want a JSON object")
	}
	var m map[string]any
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return fmt.Errorf("values: %s", describeJSONError(err))
	}
	return nil
}

func (c *HelmChart) validate() error {
	sources := 0
	for _, set := range []bool{len(c.Archive) > 0, c.Artifact != "", c.Repository != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return fmt.Errorf("give exactly one of archive, artifact and repository")
	}
	if len(c.Archive) > MaxInlineChartBytes {
		return fmt.Errorf("archive: %d bytes, larger than %d; send it as an artifact", len(c.Archive), MaxInlineChartBytes)
	}
	if c.Artifact != "" && !IsArtifactDigest(c.Artifact) {
		return fmt.Errorf("artifact %q: want %s followed by 64 lower-case hex digits", c.Artifact, ArtifactDigestPrefix)
	}
	if c.Repository == "" {
		if c.Name != "" || c.Version != "" || c.Username != "" || c.Password != "" || c.CA != "" || c.PlainHTTP {
			return fmt.Errorf("name, version, username, password, ca and plain_http: only with repository")
		}
		return nil
	}
	if err := c.validateRepository(); err != nil {
		return err
	}
	if len(c.Version) > MaxChartVersionLength {
		return fmt.Errorf("version: longer than %d bytes", MaxChartVersionLength)
	}
	if c.Password != "" {
		if _, err := vault.ParseRef(c.Password); err != nil {
			return fmt.Errorf("password: must be a vault reference (vault://<provider>/<path>/<key>), never the password itself: %w", err)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(c.Username), vault.Scheme) {
		if _, err := vault.ParseRef(c.Username); err != nil {
			return fmt.Errorf("username: %w", err)
		}
	}
	if (c.Username == "") != (c.Password == "") {
		return fmt.Errorf("username and password: give both or neither")
	}
	if len(c.CA) > 64<<10 {
		return fmt.Errorf("ca: larger than 64 KiB")
	}
	if c.CA != "" && !strings.Contains(c.CA, "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("ca: want PEM certificates")
	}
	return nil
}

func (c *HelmChart) validateRepository() error {
	if len(c.Repository) > MaxURLLength {
		return fmt.Errorf("repository: longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(c.Repository)
	if err != nil {
		return fmt.Errorf("repository: not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("repository: carries credentials in the URL; use username and password with vault references")
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("repository %q: want scheme://host/path without query or fragment", c.Repository)
	}
	switch u.Scheme {
	case "oci":
		if c.Name != "" {
			return fmt.Errorf("name: not used with an oci:// repository, whose last path segment is the chart")
		}
		if strings.Trim(u.Path, "/") == "" {
			return fmt.Errorf("repository %q: want oci://host/path/chart", c.Repository)
		}
	case "http", "https":
		if c.PlainHTTP {
			return fmt.Errorf("plain_http: only for oci:// repositories")
		}
		if c.Name == "" {
			return fmt.Errorf("name: is required with an HTTP(S) repository")
		}
		if !IsDNSLabel(c.Name) && !isChartName(c.Name) {
			return fmt.Errorf("name %q: want a chart name (letters, digits, '-', '_', '.')", c.Name)
		}
	default:
		return fmt.Errorf("repository %q: want an https://, http:// or oci:// URL", c.Repository)
	}
	return nil
}

func isChartName(s string) bool {
	if s == "" || len(s) > 250 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
