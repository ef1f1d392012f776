package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/executor/manifests/bundle"
	"github.com/outposthq/outpost/internal/taskspec"
)

// diffContextLines is how many unchanged lines surround each change.
const diffContextLines = 3

// releaseDiff is the -o json|yaml form of `release diff`.
type releaseDiff struct {
	Environment string `json:"environment"`
	Release     string `json:"release"`
	From        string `json:"from"`
	To          string `json:"to"`
	Diff        string `json:"diff"`
}

func (a *app) newReleaseDiffCommand() *cobra.Command {
	var (
		ref      releaseRef
		from, to int64
		file     string
	)
	cmd := &cobra.Command{
		Use:   "diff NAME [--from N] [--to M] [--env NAME] | diff -f FILE|- [--env NAME]",
		Short: "Show what changed between two revisions, or what applying a file would change",
		Long: `diff renders two revisions as YAML (kind, mode, ignore rules, the spec, and for
manifests the bundle's objects one by one, sorted by kind, namespace and name)
and prints a unified diff of them.

Without --from and --to it compares the applied revision with the wanted one
when they differ, else the newest revision with the one before it. With -f it
compares the newest revision of each release in the file with what applying
the file would send (nothing is uploaded or applied).

  outpost release diff shop
  outpost release diff shop --from 2 --to 5
  outpost release diff -f release.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if file != "" {
				if len(args) > 0 || from != 0 || to != 0 {
					return errors.New("release diff: -f compares a file with the newest revisions; it takes no NAME, --from or --to")
				}
				rels, err := a.readReleaseFile(file, ref.env)
				if err != nil {
					return fmt.Errorf("release diff: %w", err)
				}
				client, _, err := a.dial()
				if err != nil {
					return err
				}
				return a.diffFile(ctx, client, rels)
			}
			if len(args) == 0 {
				return errors.New("release diff: name the release, or pass -f FILE to compare a release file")
			}
			if from < 0 || to < 0 {
				return errors.New("release diff: --from and --to are revision numbers, 1 or more")
			}
			client, env, err := a.dialRelease(ctx, &ref, args[0])
			if err != nil {
				return err
			}
			return a.diffRevisions(ctx, client, env, args[0], from, to)
		},
	}
	ref.bind(cmd)
	cmd.Flags().Int64Var(&from, "from", 0, "older revision (default: the applied one, or the one before --to)")
	cmd.Flags().Int64Var(&to, "to", 0, "newer revision (default: the wanted one, the newest)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file, or - for stdin, to compare with the newest revisions")
	return cmd
}

// diffRevisions prints the diff between two stored revisions of a release.
func (a *app) diffRevisions(ctx context.Context, client outpostv1connect.OperatorServiceClient, env, name string, from, to int64) error {
	if from == 0 || to == 0 {
		res, err := client.GetRelease(ctx, connect.NewRequest(&v1.GetReleaseRequest{Environment: env, Name: name}))
		if err != nil {
			return apiError("get release "+name, err)
		}
		rel := res.Msg.GetRelease()
		switch {
		case to == 0 && from == 0 && rel.GetAppliedRevision() != 0 && rel.GetAppliedRevision() != rel.GetRevision():
			from, to = rel.GetAppliedRevision(), rel.GetRevision()
		case to == 0:
			to = rel.GetRevision()
		}
		if from == 0 {
			from = to - 1
		}
	}
	if to < 1 {
		return fmt.Errorf("release diff %s: --to %d: revisions start at 1", name, to)
	}
	get := func(n int64) (*v1.ReleaseRevision, error) {
		res, err := client.GetReleaseRevision(ctx, connect.NewRequest(&v1.GetReleaseRevisionRequest{Environment: env, Name: name, Revision: n}))
		if err != nil {
			return nil, apiError(fmt.Sprintf("get revision %d of release %s", n, name), err)
		}
		return res.Msg.GetRevision(), nil
	}
	// The first revision is compared with nothing: all of it is new.
	var older *v1.ReleaseRevision
	fromName := "(nothing)"
	if from >= 1 {
		var err error
		if older, err = get(from); err != nil {
			return err
		}
		fromName = fmt.Sprintf("revision %d", from)
	}
	newer, err := get(to)
	if err != nil {
		return err
	}
	return a.printDiff(env, name, fromName, fmt.Sprintf("revision %d", to), older, newer)
}

// diffFile prints, for each release of a file, the diff between its
// newest revision and what applying the file would send.
func (a *app) diffFile(ctx context.Context, client outpostv1connect.OperatorServiceClient, rels []*preparedRelease) error {
	var out []releaseDiff
	for _, r := range rels {
		req, _, err := r.request()
		if err != nil {
			return fmt.Errorf("release diff %s: %w", r.name, err)
		}
		local := &v1.ReleaseRevision{Kind: req.GetKind(), Spec: req.GetSpec(), Artifacts: req.GetArtifacts(), Mode: req.GetMode(), Ignore: req.GetIgnore()}
		var (
			newest   *v1.ReleaseRevision
			fromName = "(no release)"
		)
		res, err := client.GetRelease(ctx, connect.NewRequest(&v1.GetReleaseRequest{Environment: r.env, Name: r.name}))
		switch {
		case connect.CodeOf(err) == connect.CodeNotFound:
		case err != nil:
			return apiError("get release "+r.name, err)
		default:
			newest = res.Msg.GetRevision()
			fromName = fmt.Sprintf("revision %d", newest.GetRevision())
		}
		d, err := revisionDiff(fromName, r.source, newest, local)
		if err != nil {
			return fmt.Errorf("release diff %s: %w", r.name, err)
		}
		if a.format == formatTable {
			if d == "" {
				a.printf("release %s: applying %s changes nothing (%s)\n", r.name, r.source, fromName)
			} else {
				a.printf("%s", d)
			}
		}
		out = append(out, releaseDiff{Environment: r.env, Release: r.name, From: fromName, To: r.source, Diff: d})
	}
	if a.format == formatTable {
		return nil
	}
	if len(out) == 1 {
		return a.printValue(out[0], nil)
	}
	return a.printValue(out, nil)
}

// printDiff prints the diff of two revisions, or says they do not differ.
func (a *app) printDiff(env, name, fromName, toName string, older, newer *v1.ReleaseRevision) error {
	d, err := revisionDiff(fromName, toName, older, newer)
	if err != nil {
		return fmt.Errorf("release diff %s: %w", name, err)
	}
	v := releaseDiff{Environment: env, Release: name, From: fromName, To: toName, Diff: d}
	return a.printValue(v, func(w io.Writer) {
		if d == "" {
			linef(w, "release %s: %s and %s do not differ\n", name, fromName, toName)
			return
		}
		_, _ = io.WriteString(w, d) // the table writer reports write errors from Flush
	})
}

// revisionDiff returns the unified diff of two revisions as rendered by
// renderRevision; "" when they render the same. A nil revision renders
// as nothing.
func revisionDiff(fromName, toName string, older, newer *v1.ReleaseRevision) (string, error) {
	var a, b string
	var err error
	if older != nil {
		if a, err = renderRevision(older); err != nil {
			return "", err
		}
	}
	if b, err = renderRevision(newer); err != nil {
		return "", err
	}
	if a == b {
		return "", nil
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(a), B: splitLines(b), FromFile: fromName, ToFile: toName, Context: diffContextLines,
	})
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	// Tabs inside values would otherwise be aligned by the table writer.
	return strings.ReplaceAll(d, "\t", "    "), nil
}

// splitLines splits s into lines that keep their "\n", as difflib wants.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}

// revisionView is what a diff shows of a revision, before the objects.
type revisionView struct {
	Kind      string            `json:"kind"`
	Mode      string            `json:"mode"`
	Ignore    []*ignoreRuleView `json:"ignore,omitempty"`
	Artifacts []string          `json:"artifacts,omitempty"`
	Spec      map[string]any    `json:"spec"`
}

type ignoreRuleView struct {
	Group string   `json:"group,omitempty"`
	Kind  string   `json:"kind,omitempty"`
	Paths []string `json:"paths"`
}

// renderRevision renders a revision as stable, readable YAML: kind, mode,
// ignore rules and artifacts, then the spec with keys sorted; a
// manifests bundle is shown as its objects, one YAML document each,
// sorted by kind, namespace and name so that moving an object between
// files shows no change; a helm chart archive as its size and digest.
func renderRevision(r *v1.ReleaseRevision) (string, error) {
	v := revisionView{Kind: r.GetKind(), Mode: modeName(r.GetMode()), Artifacts: r.GetArtifacts()}
	for _, rule := range r.GetIgnore() {
		v.Ignore = append(v.Ignore, &ignoreRuleView{Group: rule.GetGroup(), Kind: rule.GetKind(), Paths: rule.GetPaths()})
	}
	if err := json.Unmarshal(r.GetSpec(), &v.Spec); err != nil {
		return "", fmt.Errorf("revision %d: the spec is not a JSON object: %w", r.GetRevision(), err)
	}
	var objects string
	switch r.GetKind() {
	case taskspec.KindManifests:
		// The hub numbers revisions; the number is in the diff's header.
		delete(v.Spec, "revision")
		if b, ok := v.Spec["bundle"].(string); ok {
			delete(v.Spec, "bundle")
			objects = renderBundle(b)
		}
	case taskspec.KindHelm:
		// A release always installs or upgrades; the hub stores the spec
		// without the action, the CLI sends it as task run does.
		if a, _ := v.Spec["action"].(string); a == taskspec.HelmInstall {
			delete(v.Spec, "action")
		}
		if c, ok := v.Spec["chart"].(map[string]any); ok {
			if s, ok := c["archive"].(string); ok {
				c["archive"] = describeArchive(s)
			}
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("render revision: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return "", fmt.Errorf("render revision: %w", err)
	}
	return string(y) + objects, nil
}

// describeArchive replaces an inline chart archive (base64) by what a
// reader can compare: its size and digest.
func describeArchive(b64 string) string {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Sprintf("(%d characters, not base64)", len(b64))
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("(chart archive, %d bytes, %s%s)", len(data), taskspec.ArtifactDigestPrefix, hex.EncodeToString(sum[:]))
}

// renderBundle renders a bundle's objects as YAML documents sorted by
// kind, namespace and name; a bundle that does not decode is shown as
// it is.
func renderBundle(b string) string {
	objs, err := bundle.Decode([]byte(b), bundle.Limits{MaxBytes: maxBundleBytes})
	if err != nil {
		return "objects: |\n" + indent(b, "  ")
	}
	type doc struct{ key, text string }
	docs := make([]doc, 0, len(objs))
	for _, o := range objs {
		y, err := yaml.Marshal(o.Obj.Object)
		if err != nil {
			y = []byte(fmt.Sprintf("# %s does not render: %v\n", o, err))
		}
		name := o.Obj.GetName()
		if ns := o.Obj.GetNamespace(); ns != "" {
			name = ns + "/" + name
		}
		docs = append(docs, doc{key: bundle.Key(o.Obj), text: fmt.Sprintf("--- # %s %s\n%s", o.Obj.GetKind(), name, y)})
	}
	slices.SortStableFunc(docs, func(a, b doc) int { return strings.Compare(a.key, b.key) })
	var out bytes.Buffer
	for _, d := range docs {
		out.WriteString(d.text)
	}
	return out.String()
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "") + "\n"
}
