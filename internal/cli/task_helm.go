package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/timestamppb"
	helmarchive "helm.sh/helm/v4/pkg/chart/loader/archive"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/ignore"
	"helm.sh/helm/v4/pkg/strvals"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// Bounds of what the helm flags read. The chart bounds are the agent's
// defaults, so a chart refused here would be refused there too.
const (
	// maxChartFileBytes caps one file of a chart directory.
	maxChartFileBytes = archive.DefaultMaxFileBytes
	// maxChartTotalBytes caps all files of a chart directory together.
	maxChartTotalBytes = archive.DefaultMaxTotalBytes
	// maxChartFiles caps the files of a chart directory.
	maxChartFiles = archive.DefaultMaxFiles
	// maxChartArchiveBytes caps a chart archive, packed or read.
	maxChartArchiveBytes = archive.DefaultMaxCompressedBytes
	// maxValuesFileBytes caps one -f file.
	maxValuesFileBytes = maxSpecBytes
	// maxRepoCABytes caps --repo-ca-file, as the spec does.
	maxRepoCABytes = 64 << 10
)

// Names of the flags that only build helm specs. --release, --namespace
// and --adopt are shared with manifests tasks, with the same meaning.
const (
	flagHelmAction      = "helm-action"
	flagChart           = "chart"
	flagRepo            = "repo"
	flagChartName       = "chart-name"
	flagVersion         = "version"
	flagUsername        = "username"
	flagPassword        = "password"
	flagRepoCAFile      = "repo-ca-file"
	flagPlainHTTP       = "plain-http"
	flagValues          = "values"
	flagSet             = "set"
	flagCreateNamespace = "create-namespace"
	flagHelmWait        = "helm-wait"
	flagAtomic          = "atomic"
	flagHelmTimeout     = "helm-timeout"
	flagHistoryMax      = "history-max"
	flagRollbackTo      = "rollback-to"
	flagKeepHistory     = "keep-history"
	flagDisableHooks    = "disable-hooks"
	flagSkipCRDs        = "skip-crds"
	flagDescription     = "description"
	flagAdopt           = "adopt"
)

// Helm actions, all of them and by what they do.
var (
	helmActions = []string{taskspec.HelmInstall, taskspec.HelmUpgrade, taskspec.HelmRollback, taskspec.HelmUninstall, taskspec.HelmStatus, taskspec.HelmHistory}
	// helmDeploys take a chart and values.
	helmDeploys = []string{taskspec.HelmInstall, taskspec.HelmUpgrade}
	// helmChanges change the cluster, and may wait and run hooks.
	helmChanges = []string{taskspec.HelmInstall, taskspec.HelmUpgrade, taskspec.HelmRollback, taskspec.HelmUninstall}
	// helmRevisions make a new revision.
	helmRevisions = []string{taskspec.HelmInstall, taskspec.HelmUpgrade, taskspec.HelmRollback}
)

// helmFlagActions lists every helm-only flag with the actions it applies
// to; nil means all of them. A flag given for another action is refused
// rather than silently dropped.
var helmFlagActions = []struct {
	name    string
	actions []string
}{
	{flagHelmAction, nil},
	{flagChart, helmDeploys},
	{flagRepo, helmDeploys},
	{flagChartName, helmDeploys},
	{flagVersion, helmDeploys},
	{flagUsername, helmDeploys},
	{flagPassword, helmDeploys},
	{flagRepoCAFile, helmDeploys},
	{flagPlainHTTP, helmDeploys},
	{flagValues, helmDeploys},
	{flagSet, helmDeploys},
	{flagCreateNamespace, helmDeploys},
	{flagAtomic, helmDeploys},
	{flagSkipCRDs, helmDeploys},
	{flagHelmWait, helmChanges},
	{flagHelmTimeout, helmChanges},
	{flagDisableHooks, helmChanges},
	{flagDescription, helmChanges},
	{flagHistoryMax, helmRevisions},
	{flagRollbackTo, []string{taskspec.HelmRollback}},
	{flagKeepHistory, []string{taskspec.HelmUninstall}},
}

// helmFlags build a helm spec from flags, so operators need not write its
// JSON, or base64 a chart archive, by hand.
type helmFlags struct {
	// fs is the flag set the flags are bound in, to tell a flag given as
	// its zero value from one not given.
	fs *pflag.FlagSet

	action          string
	chart           string
	repo            string
	chartName       string
	version         string
	username        string
	password        string
	repoCAFile      string
	plainHTTP       bool
	valueFiles      []string
	set             []string
	createNamespace bool
	wait            bool
	atomic          bool
	timeout         time.Duration
	historyMax      int
	rollbackTo      int
	keepHistory     bool
	disableHooks    bool
	skipCRDs        bool
	description     string
}

// bind adds the helm flags to fl, which must already hold the manifests
// flags: --release, --namespace and --adopt serve both kinds, and their
// help says so.
func (h *helmFlags) bind(fl *pflag.FlagSet) {
	h.fs = fl
	fl.StringVar(&h.action, flagHelmAction, "", "helm: install (the default: upgrade --install), upgrade, rollback, uninstall, status or history")
	fl.StringVar(&h.chart, flagChart, "", "helm: chart directory (packed here), chart archive (.tgz) or oci://host/path/chart")
	fl.StringVar(&h.repo, flagRepo, "", "helm: HTTP(S) chart repository URL; name the chart with --chart-name")
	fl.StringVar(&h.chartName, flagChartName, "", "helm: chart name in the --repo repository")
	fl.StringVar(&h.version, flagVersion, "", "helm: chart version or semver constraint, for --repo and oci:// charts (default: the latest stable)")
	fl.StringVar(&h.username, flagUsername, "", "helm: user name for the repository or registry (may be a vault reference)")
	fl.StringVar(&h.password, flagPassword, "", "helm: vault reference to the repository or registry password, e.g. vault://k8s/registry-creds/password")
	fl.StringVar(&h.repoCAFile, flagRepoCAFile, "", "helm: PEM file of extra CAs the agent trusts for the repository or registry")
	fl.BoolVar(&h.plainHTTP, flagPlainHTTP, false, "helm: reach the oci:// registry over plain HTTP")
	fl.StringSliceVarP(&h.valueFiles, flagValues, "f", nil, "helm: YAML values file, or - for stdin (repeatable; later files win)")
	fl.StringArrayVar(&h.set, flagSet, nil, "helm: value as key=value, in helm's --set syntax (repeatable; wins over --values)")
	fl.BoolVar(&h.createNamespace, flagCreateNamespace, false, "helm: create the release's namespace when it is missing")
	fl.BoolVar(&h.wait, flagHelmWait, false, "helm: wait until the release's workloads are ready (helm --wait)")
	fl.BoolVar(&h.atomic, flagAtomic, false, "helm: roll a failed upgrade back, uninstall a failed install; implies --helm-wait")
	fl.DurationVar(&h.timeout, flagHelmTimeout, 0, "helm: time for each Kubernetes operation and the wait, whole seconds up to 1h (default 5m)")
	fl.IntVar(&h.historyMax, flagHistoryMax, 0, "helm: revisions to keep (default 10)")
	fl.IntVar(&h.rollbackTo, flagRollbackTo, 0, "helm: revision a rollback returns to (default: the previous one)")
	fl.BoolVar(&h.keepHistory, flagKeepHistory, false, "helm: keep the release's records on uninstall")
	fl.BoolVar(&h.disableHooks, flagDisableHooks, false, "helm: do not run the chart's hooks")
	fl.BoolVar(&h.skipCRDs, flagSkipCRDs, false, "helm: do not install the chart's crds/")
	fl.StringVar(&h.description, flagDescription, "", "helm: description recorded with the revision")
	for name, usage := range map[string]string{
		"release":   "manifests and helm: release name",
		"namespace": "manifests: namespace for namespaced objects that name none; helm: the release's namespace (required)",
		flagAdopt:   "manifests and helm: take over existing objects the release does not own",
	} {
		if f := fl.Lookup(name); f != nil {
			f.Usage = usage
		}
	}
}

// given returns the helm-only flags given on the command line, in
// declaration order.
func (h *helmFlags) given() []string {
	var names []string
	for _, f := range helmFlagActions {
		if h.fs != nil && h.fs.Changed(f.name) {
			names = append(names, f.name)
		}
	}
	return names
}

// used reports whether any helm-only flag was given.
func (h *helmFlags) used() bool { return len(h.given()) > 0 }

// buildsHelm reports whether `task run` builds a helm spec from flags: a
// helm-only flag was given, or --kind helm with the flags helm shares with
// manifests.
func (f *taskRunFlags) buildsHelm() bool {
	return f.helm.used() || f.kind == taskspec.KindHelm && f.manifests.used()
}

// helmTask is a helm spec built from flags and checked, ready to send.
type helmTask struct {
	spec taskspec.Helm
	// encoded is the spec as sent, validated as the hub validates it.
	encoded []byte
	// chart is a chart archive read or packed here, nil for a chart the
	// agent fetches from a repository.
	chart *packedChart
	// upload says the archive travels as an artifact instead of inline.
	upload bool
}

// packedChart is a chart archive and what the notes say about it.
type packedChart struct {
	archive []byte
	digest  string
	// name and version are the chart's, from its Chart.yaml.
	name, version string
	// from is the path given; files counts the files packed from a
	// directory (0 for an archive read as it is).
	from  string
	files int
}

// prepareHelm checks the helm flags of `task run`, packs or reads the
// chart and reads the values. Everything that can fail locally fails here,
// before the hub is contacted or anything uploaded.
func (a *app) prepareHelm(f *taskRunFlags) (*helmTask, error) {
	h, m := &f.helm, &f.manifests
	switch {
	case f.kind == "":
		f.kind = taskspec.KindHelm
	case f.kind != taskspec.KindHelm:
		return nil, fmt.Errorf("helm flags (%s) do not go with --kind %s", flagList(h.given()), f.kind)
	}
	if f.specFile != "" || f.specJSON != "" {
		return nil, errors.New("pass the helm spec either with flags (--release, --chart, ...) or with --spec/--spec-json, not both")
	}
	switch {
	case len(m.bundle) > 0 || m.noPrune:
		return nil, errors.New("--bundle and --no-prune build manifests tasks; a helm task takes its chart from --chart, or from --repo and --chart-name")
	case m.revision != 0:
		return nil, errors.New("--revision numbers a manifests revision; to roll a helm release back use --helm-action rollback --rollback-to N")
	}
	action := h.action
	if action == "" {
		action = taskspec.HelmInstall
	}
	if !slices.Contains(helmActions, action) {
		return nil, fmt.Errorf("--helm-action %q: want one of %s", h.action, strings.Join(helmActions, ", "))
	}
	if m.release == "" || m.namespace == "" {
		return nil, errors.New("a helm task needs --release NAME and --namespace NS (the release's namespace)")
	}
	if err := h.checkActionFlags(action, m.adopt); err != nil {
		return nil, err
	}

	t := &helmTask{spec: taskspec.Helm{
		Action: action, Release: m.release, Namespace: m.namespace,
		CreateNamespace: h.createNamespace, Wait: h.wait, Atomic: h.atomic, HistoryMax: h.historyMax,
		Adopt: m.adopt, Revision: h.rollbackTo, DisableHooks: h.disableHooks, SkipCRDs: h.skipCRDs,
		KeepHistory: h.keepHistory, Description: h.description,
	}}
	if h.fs.Changed(flagHelmTimeout) {
		secs, err := helmTimeoutSeconds(h.timeout)
		if err != nil {
			return nil, err
		}
		t.spec.TimeoutSeconds = secs
	}
	if slices.Contains(helmDeploys, action) {
		chart, packed, err := h.chartSource()
		if err != nil {
			return nil, err
		}
		t.spec.Chart, t.chart = chart, packed // encode places a packed archive
		if t.spec.Values, err = mergeValues(h.valueFiles, h.set, a.opts.Stdin, flagName); err != nil {
			return nil, err
		}
	}
	if err := t.encode(); err != nil {
		return nil, err
	}
	return t, nil
}

// checkActionFlags refuses flags that do nothing for action.
func (h *helmFlags) checkActionFlags(action string, adopt bool) error {
	for _, f := range helmFlagActions {
		if f.actions != nil && h.fs.Changed(f.name) && !slices.Contains(f.actions, action) {
			return fmt.Errorf("--%s does not apply to a helm %s; it goes with %s", f.name, action, orList(f.actions))
		}
	}
	if adopt && !slices.Contains(helmDeploys, action) {
		return fmt.Errorf("--adopt does not apply to a helm %s; it goes with %s", action, orList(helmDeploys))
	}
	return nil
}

// helmTimeoutSeconds converts --helm-timeout to the spec's whole seconds.
func helmTimeoutSeconds(d time.Duration) (int, error) {
	limit := taskspec.MaxHelmTimeoutSeconds * time.Second
	switch {
	case d < time.Second || d > limit:
		return 0, fmt.Errorf("--helm-timeout %v: want 1s up to %v", d, limit)
	case d%time.Second != 0:
		return 0, fmt.Errorf("--helm-timeout %v: want whole seconds", d)
	}
	return int(d / time.Second), nil
}

// chartSource returns the spec's chart for a repository or registry, or
// the archive of a local chart, which encode places in the spec.
func (h *helmFlags) chartSource() (*taskspec.HelmChart, *packedChart, error) {
	return chartOptions{
		chart: h.chart, repo: h.repo, chartName: h.chartName, version: h.version,
		username: h.username, password: h.password, repoCAFile: h.repoCAFile, plainHTTP: h.plainHTTP,
		given: h.fs.Changed,
		name:  flagName,
	}.source()
}

// chartOptions say where a helm chart comes from, whether from the flags
// of `task run` or from a release file.
type chartOptions struct {
	chart, repo, chartName, version string
	username, password, repoCAFile  string
	plainHTTP                       bool
	// given reports whether the option of this flag name was set.
	given func(flag string) bool
	// name is how errors call the option of this flag name.
	name func(flag string) string
}

// source returns the spec's chart for a repository or registry, or the
// archive of a local chart, which helmTask.encode places in the spec.
func (o chartOptions) source() (*taskspec.HelmChart, *packedChart, error) {
	n := o.name
	oci := strings.HasPrefix(o.chart, "oci://")
	remote := o.repo != "" || oci
	switch {
	case o.repo != "" && o.chart != "":
		return nil, nil, fmt.Errorf("%s and %s: give %s URL with %s NAME, or %s alone", n(flagChart), n(flagRepo), n(flagRepo), n(flagChartName), n(flagChart))
	case o.repo != "" && strings.HasPrefix(o.repo, "oci://"):
		return nil, nil, fmt.Errorf("%s %s: an OCI chart is named whole, as %s %s/NAME", n(flagRepo), o.repo, n(flagChart), strings.TrimSuffix(o.repo, "/"))
	case o.repo != "" && o.chartName == "":
		return nil, nil, fmt.Errorf("%s needs %s NAME, the chart's name in the repository", n(flagRepo), n(flagChartName))
	case o.repo == "" && o.chartName != "":
		return nil, nil, fmt.Errorf("%s names a chart in a %s repository; give %s URL too", n(flagChartName), n(flagRepo), n(flagRepo))
	case o.repo == "" && o.chart == "":
		return nil, nil, fmt.Errorf("a helm install or upgrade needs a chart: %[1]s DIR, %[1]s FILE.tgz, %[1]s oci://host/path/chart, or %[2]s URL %[3]s NAME", n(flagChart), n(flagRepo), n(flagChartName))
	case !remote:
		for _, name := range []string{flagVersion, flagUsername, flagPassword, flagRepoCAFile, flagPlainHTTP} {
			if o.given(name) {
				return nil, nil, fmt.Errorf("%s applies to charts from a repository or registry (%s, or %s oci://...), not to the local chart %s", n(name), n(flagRepo), n(flagChart), o.chart)
			}
		}
		packed, err := readChart(o.chart)
		if err != nil {
			return nil, nil, err
		}
		return nil, packed, nil
	case o.plainHTTP && !oci:
		return nil, nil, fmt.Errorf("%s applies to oci:// registries; use an http:// %s URL for a plain-HTTP repository", n(flagPlainHTTP), n(flagRepo))
	}
	c := &taskspec.HelmChart{Repository: o.repo, Name: o.chartName, Version: o.version, Username: o.username, Password: o.password, PlainHTTP: o.plainHTTP}
	if oci {
		c.Repository = o.chart
	}
	if err := checkCredentials(o.username, o.password, n); err != nil {
		return nil, nil, err
	}
	if o.repoCAFile != "" {
		ca, err := readBoundedFile(n(flagRepoCAFile), o.repoCAFile, maxRepoCABytes)
		if err != nil {
			return nil, nil, err
		}
		if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, nil, fmt.Errorf("%s %s: holds no PEM certificate", n(flagRepoCAFile), o.repoCAFile)
		}
		c.CA = string(ca)
	}
	return c, nil, nil
}

// checkCredentials refuses a password that is not a vault reference: the
// hub stores specs, and must never hold the password itself. The
// password is never repeated in the error.
func checkCredentials(username, password string, n func(string) string) error {
	if password != "" && !strings.HasPrefix(password, vault.Scheme) {
		return fmt.Errorf("%s must be a vault reference such as %sk8s/registry-creds/password, never the password itself: "+
			"the hub would store it; keep the password where the agent resolves references (e.g. a Secret in its namespace) and pass the reference",
			n(flagPassword), vault.Scheme)
	}
	if password != "" {
		if _, err := vault.ParseRef(password); err != nil {
			return fmt.Errorf("%s: %w", n(flagPassword), err)
		}
	}
	if (username == "") != (password == "") {
		return fmt.Errorf("%s and %s: give both or neither", n(flagUsername), n(flagPassword))
	}
	return nil
}

// encode puts the chart archive into the spec (inline when it and the
// spec fit, as an artifact named by its digest otherwise) and validates
// the spec exactly as the hub will.
func (t *helmTask) encode() error {
	if t.chart != nil {
		t.spec.Chart = &taskspec.HelmChart{Archive: t.chart.archive}
		if len(t.chart.archive) > taskspec.MaxInlineChartBytes {
			t.upload = true
		} else if enc, err := json.Marshal(t.spec); err != nil || len(enc) > taskspec.MaxSpecBytes {
			// Inline, base64 grows the archive by a third; beside large
			// values it may not fit.
			t.upload = true
		}
		if t.upload {
			t.spec.Chart = &taskspec.HelmChart{Artifact: t.chart.digest}
		}
	}
	if err := t.spec.Validate(); err != nil {
		return fmt.Errorf("helm spec: %w", err)
	}
	enc, err := json.Marshal(t.spec)
	if err != nil {
		return fmt.Errorf("helm spec: %w", err)
	}
	if err := taskspec.Validate(taskspec.KindHelm, enc); err != nil {
		return fmt.Errorf("helm spec: %w", err)
	}
	t.encoded = enc
	return nil
}

// addHelm completes req with the helm spec, uploading the chart archive
// first when it travels as an artifact, and the release's conflict key.
func (a *app) addHelm(ctx context.Context, client outpostv1connect.OperatorServiceClient, t *helmTask, req *v1.EnqueueTaskRequest) error {
	if c := t.chart; c != nil {
		desc := fmt.Sprintf("Chart %s-%s", c.name, c.version)
		if c.files > 0 {
			desc += fmt.Sprintf(" packed from %s (%d files)", c.from, c.files)
		} else {
			desc += " read from " + c.from
		}
		if t.upload {
			digest, err := uploadContent(ctx, client, "the chart archive", bytes.NewReader(c.archive))
			if err != nil {
				return err
			}
			if digest != c.digest {
				return fmt.Errorf("upload the chart archive: stored as %s, the spec names %s", digest, c.digest)
			}
			req.Artifacts = append(req.Artifacts, digest)
			a.notef("%s: %d bytes, uploaded as %s.", desc, len(c.archive), digest)
		} else {
			a.notef("%s: %d bytes, inline in the spec.", desc, len(c.archive))
		}
	}
	req.Spec = t.encoded
	if key := t.spec.ConflictKey(); !slices.Contains(req.ConflictKeys, key) {
		req.ConflictKeys = append(req.ConflictKeys, key)
	}
	return nil
}

// mergeValues merges the -f files left to right, then the --set values,
// as helm does, and returns them as the spec's JSON object (nil when there
// are none). Each file is checked for alias bombs before it is decoded.
func mergeValues(files, sets []string, stdin io.Reader, n func(flag string) string) (json.RawMessage, error) {
	valuesName := n(flagValues)
	base := map[string]any{}
	readStdin := false
	for _, file := range files {
		var (
			data []byte
			err  error
		)
		if file == "-" {
			if stdin == nil {
				return nil, fmt.Errorf("%s -: stdin is not available for values here; name a file", valuesName)
			}
			if readStdin {
				return nil, fmt.Errorf("%s -: stdin can be read only once", valuesName)
			}
			readStdin = true
			data, err = readLimited(valuesName, "stdin", stdin, maxValuesFileBytes)
			file = "stdin"
		} else {
			data, err = readBoundedFile(valuesName, file, maxValuesFileBytes)
		}
		if err != nil {
			return nil, err
		}
		if err := archive.CheckYAML(file, data, archive.YAMLLimits{}); err != nil {
			return nil, fmt.Errorf("%s: %w", valuesName, err)
		}
		vals, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", valuesName, file, err)
		}
		base = loader.MergeMaps(base, vals)
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, base); err != nil {
			return nil, fmt.Errorf("%s %s: %w", n(flagSet), s, err)
		}
	}
	if len(base) == 0 {
		return nil, nil
	}
	enc, err := json.Marshal(base)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	if len(enc) > taskspec.MaxHelmValuesBytes {
		return nil, fmt.Errorf("the values of %s and %s come to %d bytes as JSON, more than the %d KiB a spec carries; put large data in the chart", valuesName, n(flagSet), len(enc), taskspec.MaxHelmValuesBytes>>10)
	}
	return enc, nil
}

// readBoundedFile reads path for flag, failing when it holds more than
// limit bytes.
func readBoundedFile(flag, path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer closeQuietly(f)
	return readLimited(flag, path, f, limit)
}

// readLimited reads r, named name, for flag, failing past limit bytes.
func readLimited(flag, name string, r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", flag, name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s: larger than %d KiB", flag, name, limit>>10)
	}
	return b, nil
}

// readChart packs the chart directory at p, or reads the chart archive at
// p, and checks that Helm loads it.
func readChart(p string) (*packedChart, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("--chart: %w; for a chart in a repository use --repo URL --chart-name NAME or --chart oci://host/path/chart", err)
	}
	var packed *packedChart
	if st.IsDir() {
		packed, err = packChart(p)
	} else {
		packed, err = readChartArchive(p)
	}
	if err != nil {
		return nil, fmt.Errorf("--chart %s: %w", p, err)
	}
	sum := sha256.Sum256(packed.archive)
	packed.digest = taskspec.ArtifactDigestPrefix + hex.EncodeToString(sum[:])
	packed.from = p
	return packed, nil
}

// readChartArchive reads a chart archive as it is, after the checks the
// agent makes: a safe, bounded tar.gz holding a chart Helm loads.
func readChartArchive(p string) (*packedChart, error) {
	data, err := readBoundedFile("--chart", p, maxChartArchiveBytes)
	if err != nil {
		return nil, err
	}
	if _, err := archive.ReadTarGz(bytes.NewReader(data), archive.Options{}); err != nil {
		return nil, fmt.Errorf("not a chart archive: %w", err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a chart archive: %w", err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Name(), err)
	}
	return &packedChart{archive: data, name: ch.Metadata.Name, version: ch.Metadata.Version}, nil
}

// packChart packs the chart directory dir as `helm package` lays a chart
// out: every file under a top directory named after the chart, subcharts
// under charts/ included, minus what .helmignore excludes. The archive is
// reproducible: the same files give the same bytes, whatever their
// modification times, owners or modes, since entries are sorted by name
// and carry fixed times and modes.
func packChart(dir string) (*packedChart, error) {
	files, err := chartFiles(dir)
	if err != nil {
		return nil, err
	}
	buffered := make([]*helmarchive.BufferedFile, len(files))
	for i, f := range files {
		buffered[i] = &helmarchive.BufferedFile{Name: f.name, Data: f.data}
	}
	ch, err := loader.LoadFiles(buffered)
	if err != nil {
		return nil, fmt.Errorf("not a chart: %w", err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Name(), err)
	}
	packed, err := packTarGz(files, ch.Metadata.Name+"/", tar.FormatUnknown, maxChartArchiveBytes)
	if err != nil {
		return nil, err
	}
	return &packedChart{archive: packed, name: ch.Metadata.Name, version: ch.Metadata.Version, files: len(files)}, nil
}

// chartFiles reads the files of a chart directory that `helm package`
// would pack, sorted by name: .helmignore (its own rules and Helm's
// defaults) applies, symbolic links to files are followed, and YAML
// outside templates/ is checked for alias bombs as the agent checks it.
func chartFiles(dir string) ([]packFile, error) {
	chartCaps := packCaps{files: maxChartFiles, fileBytes: maxChartFileBytes, totalBytes: maxChartTotalBytes}
	rules := ignore.Empty()
	ignoreFile := filepath.Join(dir, ignore.HelmIgnore)
	if _, err := os.Stat(ignoreFile); err == nil {
		if rules, err = ignore.ParseFile(ignoreFile); err != nil {
			return nil, fmt.Errorf("%s: %w", ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()

	var (
		files []packFile
		total int64
	)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		info, err := os.Stat(p) // follows a link to what it names
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 && info.IsDir() {
			return fmt.Errorf("%s is a link to a directory; copy the directory in, or pack the chart with helm package", name)
		}
		if rules.Ignore(name, info) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			return nil
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", name)
		}
		if err := chartCaps.admit(name, info.Size(), len(files), total); err != nil {
			return err
		}
		data, err := readBoundedFile("--chart", p, maxChartFileBytes)
		if err != nil {
			return err
		}
		total += int64(len(data))
		if isValuesLikeYAML(name) {
			if err := archive.CheckYAML(name, data, archive.YAMLLimits{}); err != nil {
				return err
			}
		}
		files = append(files, packFile{name: name, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b packFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// isValuesLikeYAML reports whether Helm parses the file as YAML before
// rendering: every .yaml or .yml file outside a templates directory.
func isValuesLikeYAML(name string) bool {
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !slices.Contains(strings.Split(path.Dir(name), "/"), "templates")
}

// flagName is how errors about flags call them: "--chart".
func flagName(flag string) string { return "--" + flag }

// flagList renders flag names as "--a, --b and --c".
func flagList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--" + n
	}
	return andList(out)
}

func andList(items []string) string {
	return joinList(items, "and")
}

func orList(items []string) string {
	return joinList(items, "or")
}

func joinList(items []string, last string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + last + " " + items[len(items)-1]
}

// helmResult is what the detail view shows of a helm task's result, the
// JSON document the agent's helm executor reports. The CLI reads it as a
// document of the API rather than importing the executor.
type helmResult struct {
	Release        string `json:"release"`
	Namespace      string `json:"namespace"`
	Action         string `json:"action"`
	Revision       int    `json:"revision"`
	Status         string `json:"status"`
	Chart          string `json:"chart"`
	AppVersion     string `json:"app_version"`
	Source         string `json:"source"`
	Description    string `json:"description"`
	Notes          string `json:"notes"`
	Unchanged      bool   `json:"unchanged"`
	ObjectsOmitted int    `json:"objects_omitted"`
	Objects        []struct {
		Group     string `json:"group"`
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Outcome   string `json:"outcome"`
	} `json:"objects"`
	History []struct {
		Revision    int    `json:"revision"`
		Status      string `json:"status"`
		Chart       string `json:"chart"`
		AppVersion  string `json:"app_version"`
		Updated     string `json:"updated"`
		Description string `json:"description"`
	} `json:"history"`
}

// helmDetail writes the spec and result of a helm task for `task get`,
// `task wait` and `task run --wait`: the spec without the chart archive's
// base64, and the result as helm shows a release (revision, status,
// chart, objects, notes, history). It returns false, having written
// nothing, when the spec or result is not a helm document, so the caller
// shows them as they are.
func (a *app) helmDetail(w io.Writer, t *v1.Task) bool {
	var (
		spec taskspec.Helm
		res  helmResult
	)
	if json.Unmarshal(t.GetSpec(), &spec) != nil {
		return false
	}
	if len(t.GetResult()) > 0 && json.Unmarshal(t.GetResult(), &res) != nil {
		return false
	}
	inline := 0
	if spec.Chart != nil {
		inline = len(spec.Chart.Archive)
		spec.Chart.Archive = nil
	}
	shown, err := json.Marshal(spec)
	if err != nil {
		return false
	}
	linef(w, "SPEC:\n%s\n", prettyJSON(shown, "  "))
	if inline > 0 {
		linef(w, "  (and the chart archive inline, %s; -o json shows it)\n", plural(int64(inline), "byte"))
	}
	if len(t.GetResult()) == 0 {
		return true
	}
	linef(w, "RESULT:\n")
	field := func(name, value string) {
		if value != "" {
			row(w, "  "+name+":", value)
		}
	}
	field("RELEASE", res.Release)
	field("NAMESPACE", res.Namespace)
	if res.Revision > 0 {
		field("REVISION", fmt.Sprint(res.Revision))
	}
	status := res.Status
	if res.Unchanged {
		status += " (an earlier attempt had done it; nothing changed)"
	}
	field("STATUS", status)
	chart := res.Chart
	if chart != "" && res.AppVersion != "" {
		chart += " (app version " + res.AppVersion + ")"
	}
	field("CHART", chart)
	field("SOURCE", res.Source)
	field("DESCRIPTION", res.Description)
	if len(res.Objects) > 0 {
		linef(w, "  OBJECTS:\n")
		row(w, "    KIND", "NAMESPACE", "NAME", "OUTCOME")
		for _, o := range res.Objects {
			kind := o.Kind
			if o.Group != "" {
				kind += "." + o.Group
			}
			row(w, "    "+kind, orDash(o.Namespace), o.Name, o.Outcome)
		}
		if res.ObjectsOmitted > 0 {
			linef(w, "    ... and %d more\n", res.ObjectsOmitted)
		}
	}
	if notes := strings.TrimSpace(res.Notes); notes != "" {
		linef(w, "  NOTES:\n")
		for line := range strings.SplitSeq(notes, "\n") {
			// A tab would make the table writer align the notes.
			linef(w, "    %s\n", strings.ReplaceAll(strings.TrimRight(line, "\r"), "\t", "    "))
		}
	}
	if len(res.History) > 0 {
		linef(w, "  HISTORY:\n")
		row(w, "    REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION")
		for _, h := range res.History {
			updated := orDash(h.Updated)
			if at, err := time.Parse(time.RFC3339, h.Updated); err == nil {
				updated = a.when(timestamppb.New(at))
			}
			row(w, fmt.Sprintf("    %d", h.Revision), updated, h.Status, orDash(h.Chart), orDash(h.AppVersion), orDash(h.Description))
		}
	}
	return true
}
