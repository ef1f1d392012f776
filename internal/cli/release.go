package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/taskspec"
)

func (a *app) newReleaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "release",
		Aliases: []string{"releases", "rel"},
		Short:   "Apply, inspect, diff, roll back and delete releases (desired state kept by agents)",
		Long: `A release is named desired state of one environment: a bundle of Kubernetes
manifests, a Helm chart with values, or a Terraform module with variables. Each apply whose content differs from
the newest revision makes a new revision; the environment's agent applies it
and then keeps the environment at it, correcting drift (mode correct) or only
reporting it (mode detect).

A release file (outpost release apply -f release.yaml):

  apiVersion: outpost.dev/v1
  kind: Release
  metadata:
    name: shop              # DNS-1123 label, at most 53 characters
    environment: prod       # or --env
  spec:
    mode: correct           # correct (default; detect for terraform) or detect
    ignore:                 # fields another controller owns
      - group: apps
        kind: Deployment
        paths: ["/spec/replicas"]
    description: "1.4.2"    # recorded with the revision
    manifests:              # exactly one of manifests, helm and terraform
      namespace: shop       # for namespaced objects that name none
      files: [deploy/]      # relative to the release file; directories give
                            # their *.yaml, *.yml and *.json, sorted
      # bundle: |           # or the objects inline
      adopt: false          # take over objects Outpost does not own
      prune: true           # remove what the previous revision had
    # helm:
    #   chart: ./charts/shop          # directory (packed here), .tgz, oci://host/path/chart,
    #   repo: https://charts.example  # or, with repo, the chart's name there
    #   version: 1.4.x
    #   username: deploy
    #   password: vault://k8s/chart-creds/password   # vault references only
    #   repoCAFile: ca.pem
    #   plainHTTP: false
    #   namespace: shop               # required
    #   createNamespace: true
    #   releaseName: shop             # Helm's release name, default metadata.name
    #   values: [values.yaml, prod.yaml]
    #   set: ["image.tag=1.4.2"]
    #   wait: true
    #   atomic: false
    #   timeout: 5m
    #   historyMax: 10
    #   skipCRDs: false
    #   disableHooks: false
    #   adopt: false
    # terraform:                      # applied to the workspace named after the release
    #   module: ./infra               # local directory (packed here), or
    #   # url: oci://registry.example/modules/infra:1.2.0   # https:// or oci://, or
    #   # artifact: sha256:…          # an uploaded module archive
    #   path: envs/prod               # the module's directory inside the archive
    #   username: deploy              # oci:// registries only
    #   password: vault://k8s/registry/password   # vault references only
    #   variables:                    # plain values, any YAML
    #     region: eu-west-1
    #     sizes: [2, 4]
    #   sensitiveVariables:           # secrets: vault references only
    #     db_password: vault://k8s/db/password
    #   approval: destroy             # never (default), destroy or always: hold such
    #                                 # plans for outpost release approve
    #   timeout: 30m
    #   parallelism: 10

Several releases may share one file as YAML documents separated by ---.
Unknown fields are errors. Applying the same file twice makes no new revision.
Deleting a terraform release destroys its workspace's resources.`,
	}
	cmd.AddCommand(a.newReleaseApplyCommand(), a.newReleaseListCommand(), a.newReleaseGetCommand(),
		a.newReleaseHistoryCommand(), a.newReleaseDiffCommand(), a.newReleaseRollbackCommand(),
		a.newReleaseDeleteCommand(), a.newReleaseApproveCommand())
	return cmd
}

func (a *app) newReleaseApplyCommand() *cobra.Command {
	var (
		file, env string
		wait      waitFlags
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|- [--env NAME] [--wait [--timeout D]]",
		Short: "Create releases or give them a new revision from a release file",
		Long: `apply reads a release file (see ` + "`outpost release --help`" + ` for the format), builds
each release's task spec exactly as ` + "`outpost task run`" + ` builds it from flags
(bundles joined in file order, chart directories packed reproducibly, values
merged as helm does; terraform module directories are packed reproducibly too,
without local state, provider caches, .git and *.tfvars files), uploads what is
too large to travel inline, and sends it to the hub. Content equal to the newest revision makes no new revision.

Everything is read and checked before the hub is contacted. With --wait, apply
waits until every release is applied (in sync or drifted) and exits 1 if one
failed or stopped at a terraform plan awaiting approval, 2 if --timeout passed
first.

  outpost release apply -f release.yaml --wait
  ./render-releases.sh | outpost release apply -f - --env staging`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("release apply: pass the release file with -f FILE, or -f - for stdin")
			}
			if err := wait.check("release apply"); err != nil {
				return err
			}
			rels, err := a.readReleaseFile(file, env)
			if err != nil {
				return fmt.Errorf("release apply: %w", err)
			}
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			return a.applyReleases(cmd.Context(), client, rels, wait)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file, or - for stdin (required)")
	cmd.Flags().StringVar(&env, "env", "", "environment of releases whose file names none")
	wait.bind(cmd, "the revision is applied", "it failed")
	return cmd
}

// applyReleases uploads and applies each release in order, then waits
// for them when asked.
func (a *app) applyReleases(ctx context.Context, client outpostv1connect.OperatorServiceClient, rels []*preparedRelease, wait waitFlags) error {
	var (
		out     []proto.Message
		targets []*v1.Release
	)
	for _, r := range rels {
		req, uploads, err := r.request()
		if err != nil {
			return fmt.Errorf("release apply %s: %w", r.name, err)
		}
		for _, u := range uploads {
			digest, err := uploadContent(ctx, client, u.what, bytes.NewReader(u.data))
			if err != nil {
				return fmt.Errorf("release apply %s: %w", r.name, err)
			}
			if digest != u.digest {
				return fmt.Errorf("release apply %s: %s was stored as %s, the spec names %s", r.name, u.what, digest, u.digest)
			}
			a.notef("Uploaded %s of release %s (%d bytes) as %s.", u.what, r.name, len(u.data), digest)
		}
		a.notef("%s", r.summary())
		res, err := client.ApplyRelease(ctx, connect.NewRequest(req))
		if err != nil {
			return apiError("apply release "+r.name+" ("+r.source+")", err)
		}
		rel, rev := res.Msg.GetRelease(), res.Msg.GetRevision()
		if a.format == formatTable {
			if res.Msg.GetCreated() {
				a.printf("release %s: revision %d created (task %s)\n", rel.GetName(), rev.GetRevision(), orDash(rel.GetTaskId()))
			} else {
				a.printf("release %s: unchanged (revision %d)\n", rel.GetName(), rev.GetRevision())
			}
		}
		out = append(out, res.Msg)
		targets = append(targets, rel)
	}
	if err := a.printMessages(out); err != nil {
		return err
	}
	if !wait.wait {
		return nil
	}
	for _, rel := range targets {
		if err := a.waitReleaseAndReport(ctx, client, rel.GetEnvironment(), rel.GetName(), rel.GetRevision(), false, wait.timeout); err != nil {
			return err
		}
	}
	return nil
}

// printf writes a line of a table-format result to stdout.
func (a *app) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(a.opts.Stdout, format, args...) // as notef: nothing to do about a closed stdout
}

// printMessages writes messages as JSON or YAML documents; tables are
// printed by the caller.
func (a *app) printMessages(msgs []proto.Message) error {
	if a.format == formatTable {
		return nil
	}
	for i, m := range msgs {
		if i > 0 && a.format == formatYAML {
			a.printf("---\n")
		}
		if err := a.printMessage(m, nil); err != nil {
			return err
		}
	}
	return nil
}

// printOutcome reports the outcome of a command that changed one thing:
// the line format in table format, else m as a JSON or YAML document.
func (a *app) printOutcome(m proto.Message, format string, args ...any) error {
	if a.format == formatTable {
		a.printf(format, args...)
		return nil
	}
	return a.printMessages([]proto.Message{m})
}

func (a *app) newReleaseListCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "list [--env NAME]",
		Short: "List releases with their revision and sync state",
		Long: `list shows each release: the revision wanted (the newest) and the one last
applied, and where it stands: pending (not applied yet), in-sync, drifted
(the environment differs), failed (the last apply failed), awaiting-approval
(a terraform plan waits for outpost release approve) or deleting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.ListReleases(cmd.Context(), connect.NewRequest(&v1.ListReleasesRequest{Environment: env}))
			if err != nil {
				return apiError("list releases", err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.releaseTable(w, res.Msg.GetReleases()) })
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only releases of this environment")
	return cmd
}

func (a *app) releaseTable(w io.Writer, rels []*v1.Release) {
	row(w, "NAME", "ENVIRONMENT", "KIND", "REVISION", "APPLIED", "SYNC", "UPDATED")
	for _, r := range rels {
		row(w, r.GetName(), envName(r.GetTenant(), r.GetEnvironment()), r.GetKind(), strconv.FormatInt(r.GetRevision(), 10),
			revisionOrDash(r.GetAppliedRevision()), syncName(r.GetSync()), a.ago(r.GetUpdatedAt()))
	}
}

func revisionOrDash(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// syncName renders a sync state as operators read it: "in-sync".
func syncName(s v1.ReleaseSync) string {
	if s == v1.ReleaseSync_RELEASE_SYNC_UNSPECIFIED {
		return "-"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), "RELEASE_SYNC_")), "_", "-")
}

// releaseRef is the --env of commands naming one existing release.
type releaseRef struct {
	env string
}

func (r *releaseRef) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.env, "env", "", "environment of the release (default: the only one holding a release of that name)")
}

// resolve returns the environment of release name: --env, or the one
// environment of the tenant that has a release of that name.
func (r *releaseRef) resolve(ctx context.Context, client outpostv1connect.OperatorServiceClient, name string) (string, error) {
	if err := checkReleaseName(name); err != nil {
		return "", fmt.Errorf("release name %w", err)
	}
	if r.env != "" {
		return r.env, nil
	}
	res, err := client.ListReleases(ctx, connect.NewRequest(&v1.ListReleasesRequest{}))
	if err != nil {
		return "", apiError("find release "+name, err)
	}
	var envs []string
	for _, rel := range res.Msg.GetReleases() {
		if rel.GetName() == name {
			envs = append(envs, rel.GetEnvironment())
		}
	}
	switch len(envs) {
	case 0:
		return "", fmt.Errorf("release %s: not found in any environment; `outpost release list` shows the releases", name)
	case 1:
		return envs[0], nil
	}
	return "", fmt.Errorf("release %s exists in %s: pass --env", name, andList(envs))
}

// dialRelease connects to the hub and resolves the environment of release
// name as ref.resolve does.
func (a *app) dialRelease(ctx context.Context, ref *releaseRef, name string) (outpostv1connect.OperatorServiceClient, string, error) {
	client, _, err := a.dial()
	if err != nil {
		return nil, "", err
	}
	env, err := ref.resolve(ctx, client, name)
	return client, env, err
}

func (a *app) newReleaseGetCommand() *cobra.Command {
	var ref releaseRef
	cmd := &cobra.Command{
		Use:   "get NAME [--env NAME]",
		Short: "Show a release: revisions, sync state, last error and drifted objects",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, env, err := a.dialRelease(cmd.Context(), &ref, args[0])
			if err != nil {
				return err
			}
			res, err := client.GetRelease(cmd.Context(), connect.NewRequest(&v1.GetReleaseRequest{Environment: env, Name: args[0]}))
			if err != nil {
				return apiError("get release "+args[0], err)
			}
			rel, rev := res.Msg.GetRelease(), res.Msg.GetRevision()
			applied := appliedRevisionOf(rel, rev)
			if a.format == formatTable && rel.GetKind() == taskspec.KindTerraform && applied == nil && rel.GetAppliedRevision() > 0 {
				// The outputs are the applied revision's.
				got, err := client.GetReleaseRevision(cmd.Context(), connect.NewRequest(&v1.GetReleaseRevisionRequest{Environment: env, Name: args[0], Revision: rel.GetAppliedRevision()}))
				if err != nil {
					return apiError(fmt.Sprintf("get release %s revision %d", args[0], rel.GetAppliedRevision()), err)
				}
				applied = got.Msg.GetRevision()
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.releaseDetail(w, rel, rev, applied) })
		},
	}
	ref.bind(cmd)
	return cmd
}

// appliedRevisionOf returns rev when it is r's applied revision.
func appliedRevisionOf(r *v1.Release, rev *v1.ReleaseRevision) *v1.ReleaseRevision {
	if rev != nil && r.GetAppliedRevision() > 0 && rev.GetRevision() == r.GetAppliedRevision() {
		return rev
	}
	return nil
}

// releaseDetail is the `release get` view: one field per line, then a
// terraform release's plan (of the wanted revision) and outputs (of
// applied, the applied revision, nil when unknown), then the drifted
// objects with their fields.
func (a *app) releaseDetail(w io.Writer, r *v1.Release, rev, applied *v1.ReleaseRevision) {
	field := func(name, value string) {
		if value != "" && value != "-" {
			row(w, name+":", value)
		}
	}
	field("RELEASE", r.GetName())
	field("ENVIRONMENT", envName(r.GetTenant(), r.GetEnvironment()))
	field("KIND", r.GetKind())
	revision := fmt.Sprintf("%d wanted, %s applied", r.GetRevision(), revisionOrNone(r.GetAppliedRevision()))
	if r.GetAppliedRevision() == r.GetRevision() {
		revision = fmt.Sprintf("%d (applied)", r.GetRevision())
	}
	field("REVISION", revision)
	field("SYNC", syncName(r.GetSync()))
	field("MODE", modeName(r.GetMode()))
	if rev != nil {
		field("DIGEST", shortDigest(rev.GetDigest()))
		field("DESCRIPTION", revisionDescription(rev))
		field("CREATED BY", rev.GetCreatedBy())
		for i, rule := range rev.GetIgnore() {
			name := ""
			if i == 0 {
				name = "IGNORE"
			}
			row(w, name+cond(name != "", ":", ""), ignoreRuleString(rule))
		}
	}
	field("TASK", r.GetTaskId())
	field("ERROR", r.GetLastError())
	field("CREATED", a.when(r.GetCreatedAt()))
	field("UPDATED", a.when(r.GetUpdatedAt()))
	if plan := rev.GetPlan(); plan != nil {
		field("PLAN", fmt.Sprintf("revision %d: %s (digest %s)", rev.GetRevision(), planCounts(plan), shortDigest(plan.GetDigest())))
		for _, line := range planLines(plan) {
			row(w, "", line)
		}
	}
	if outputs := applied.GetOutputs(); len(outputs) > 0 {
		field("OUTPUTS", fmt.Sprintf("revision %d", applied.GetRevision()))
		for _, line := range outputLines(outputs) {
			row(w, "", line)
		}
	}
	drift := r.GetDrift()
	if len(drift) == 0 {
		return
	}
	state := "not corrected"
	switch {
	case r.GetDriftCorrected():
		state = "corrected"
	case r.GetMode() == v1.ReleaseMode_RELEASE_MODE_DETECT:
		state = "not corrected (mode detect)"
	}
	field("DRIFT", fmt.Sprintf("%s, found %s, %s", plural(int64(len(drift)), "object"), a.when(r.GetDriftAt()), state))
	for _, d := range drift {
		linef(w, "  %s\n", driftString(d))
	}
}

func cond(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func revisionOrNone(n int64) string {
	if n == 0 {
		return "none"
	}
	return strconv.FormatInt(n, 10)
}

// driftString renders one drifted object as
// "Deployment shop/web: spec.replicas, spec.template...".
func driftString(d *v1.ObjectDrift) string {
	if addr := d.GetAddress(); addr != "" {
		what := strings.Join(d.GetFields(), ", ")
		if what == "" {
			what = "changed"
		}
		return strings.ReplaceAll(safeText(addr)+": "+safeText(what), "\t", " ")
	}
	name := d.GetName()
	if ns := d.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	kind := d.GetKind()
	what := strings.Join(d.GetFields(), ", ")
	switch {
	case d.GetDeleted():
		what = "deleted"
	case what == "":
		what = "changed"
	}
	// A tab would make the table writer align the fields.
	return strings.ReplaceAll(kind+" "+name+": "+what, "\t", " ")
}

// ignoreRuleString renders a rule as "apps/Deployment /spec/replicas".
func ignoreRuleString(r *v1.IgnoreRule) string {
	kind := r.GetKind()
	if kind == "" {
		kind = "*"
	}
	if g := r.GetGroup(); g != "" {
		kind = g + "/" + kind
	}
	return kind + " " + strings.Join(r.GetPaths(), ", ")
}

// shortDigest keeps the first 12 hex digits, as image tools do.
func shortDigest(d string) string {
	d = strings.TrimPrefix(d, taskspec.ArtifactDigestPrefix)
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// revisionDescription says what a revision is: "rollback to 2" for a
// rollback, else its description.
func revisionDescription(r *v1.ReleaseRevision) string {
	if from := r.GetRolledBackFrom(); from > 0 {
		s := fmt.Sprintf("rollback to %d", from)
		// The hub may record the same words as the description.
		if d := r.GetDescription(); d != "" && d != s {
			s += ": " + d
		}
		return s
	}
	return r.GetDescription()
}

func (a *app) newReleaseHistoryCommand() *cobra.Command {
	var ref releaseRef
	cmd := &cobra.Command{
		Use:   "history NAME [--env NAME]",
		Short: "List a release's revisions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, env, err := a.dialRelease(cmd.Context(), &ref, args[0])
			if err != nil {
				return err
			}
			res, err := client.ListReleaseRevisions(cmd.Context(), connect.NewRequest(&v1.ListReleaseRevisionsRequest{Environment: env, Name: args[0]}))
			if err != nil {
				return apiError("release history "+args[0], err)
			}
			revs := res.Msg.GetRevisions()
			// Plans are terraform's: other releases keep their columns.
			plans := slices.ContainsFunc(revs, func(r *v1.ReleaseRevision) bool { return r.GetPlan() != nil })
			return a.printMessage(res.Msg, func(w io.Writer) {
				head := []string{"REVISION", "CREATED", "BY", "DIGEST", "MODE"}
				if plans {
					head = append(head, "PLAN")
				}
				row(w, append(head, "DESCRIPTION")...)
				for _, r := range revs {
					cols := []string{strconv.FormatInt(r.GetRevision(), 10), a.when(r.GetCreatedAt()), orDash(r.GetCreatedBy()),
						orDash(shortDigest(r.GetDigest())), modeName(r.GetMode())}
					if plans {
						cols = append(cols, planShort(r.GetPlan()))
					}
					row(w, append(cols, orDash(revisionDescription(r)))...)
				}
			})
		},
	}
	ref.bind(cmd)
	return cmd
}

func (a *app) newReleaseRollbackCommand() *cobra.Command {
	var (
		ref  releaseRef
		to   int64
		wait waitFlags
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME --to N [--env NAME] [--wait [--timeout D]]",
		Short: "Make a new revision with the content of revision N",
		Long: `rollback makes a new revision of the release holding what revision N held
(its spec, artifacts, mode and ignore rules); the agent then applies it like
any other. History is kept: ` + "`outpost release history NAME`" + ` shows the new revision
as "rollback to N".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to <= 0 {
				return errors.New("release rollback: pass the revision to return to with --to N (see `outpost release history NAME`)")
			}
			if err := wait.check("release rollback"); err != nil {
				return err
			}
			ctx := cmd.Context()
			client, env, err := a.dialRelease(ctx, &ref, args[0])
			if err != nil {
				return err
			}
			res, err := client.RollbackRelease(ctx, connect.NewRequest(&v1.RollbackReleaseRequest{Environment: env, Name: args[0], ToRevision: to}))
			if err != nil {
				return apiError(fmt.Sprintf("roll release %s back to revision %d", args[0], to), err)
			}
			rel, rev := res.Msg.GetRelease(), res.Msg.GetRevision()
			if err := a.printOutcome(res.Msg, "release %s: revision %d created, rolling back to revision %d (task %s)\n", rel.GetName(), rev.GetRevision(), to, orDash(rel.GetTaskId())); err != nil {
				return err
			}
			if !wait.wait {
				return nil
			}
			return a.waitReleaseAndReport(ctx, client, env, rel.GetName(), rev.GetRevision(), false, wait.timeout)
		},
	}
	ref.bind(cmd)
	cmd.Flags().Int64Var(&to, "to", 0, "revision whose content to restore (required)")
	wait.bind(cmd, "the new revision is applied", "it failed")
	return cmd
}

func (a *app) newReleaseDeleteCommand() *cobra.Command {
	var (
		ref  releaseRef
		yes  bool
		wait waitFlags
	)
	cmd := &cobra.Command{
		Use:   "delete NAME [--env NAME] [--yes] [--wait [--timeout D]]",
		Short: "Delete a release and remove its objects from the environment",
		Long: `delete removes a release: the agent prunes every object the release owns
(a helm release is uninstalled, a terraform release's workspace destroyed,
without waiting for an approval), then the release is gone. On a terminal it
asks first; elsewhere pass --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wait.check("release delete"); err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			client, env, err := a.dialRelease(ctx, &ref, name)
			if err != nil {
				return err
			}
			if err := a.confirmDelete("release delete", yes, fmt.Sprintf("Delete release %s in %s? The agent removes every object it owns from the environment.", name, env)); err != nil {
				return err
			}
			res, err := client.DeleteRelease(ctx, connect.NewRequest(&v1.DeleteReleaseRequest{Environment: env, Name: name}))
			if err != nil {
				return apiError("delete release "+name, err)
			}
			if err := a.printOutcome(res.Msg, "release %s: deleting; its objects will be pruned from %s (task %s)\n", name, env, orDash(res.Msg.GetRelease().GetTaskId())); err != nil {
				return err
			}
			if !wait.wait {
				return nil
			}
			return a.waitReleaseAndReport(ctx, client, env, name, 0, true, wait.timeout)
		},
	}
	ref.bind(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	wait.bind(cmd, "the objects are removed and the release is gone", "it failed")
	return cmd
}

// maxAnswerBytes bounds the answer read from a confirmation prompt.
const maxAnswerBytes = 1 << 10

// confirmDelete asks question unless yes (--yes) was given, and fails
// with an op-prefixed error when the operator does not answer y/yes.
func (a *app) confirmDelete(op string, yes bool, question string) error {
	if yes {
		return nil
	}
	ok, err := a.confirm(question)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return fmt.Errorf("%s: not confirmed; nothing was deleted", op)
	}
	return nil
}

// confirm asks question on stderr and reads y/yes from stdin. When stdin
// is not a terminal nobody can answer, so it fails and asks for --yes.
func (a *app) confirm(question string) (bool, error) {
	if !a.opts.StdinIsTerminal() {
		return false, errors.New("stdin is not a terminal to confirm on: pass --yes")
	}
	_, _ = fmt.Fprintf(a.opts.Stderr, "%s [y/N] ", question) // the answer is read either way
	line, err := bufio.NewReader(io.LimitReader(a.opts.Stdin, maxAnswerBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// stdinIsTerminal is the default of Options.StdinIsTerminal: stdin is a
// character device, not a pipe or file.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// waitReleaseAndReport waits for a release as waitRelease does and turns
// the outcome into a line and an exit code: 0 applied (or gone, when
// deleting), 1 failed, 2 timed out.
func (a *app) waitReleaseAndReport(ctx context.Context, client outpostv1connect.OperatorServiceClient, env, name string, revision int64, deleting bool, timeout time.Duration) error {
	rel, err := a.waitRelease(ctx, client, env, name, revision, deleting, timeout)
	switch {
	case errors.Is(err, ErrReleaseWaitTimeout):
		return &ExitError{Code: ExitTimeout, Err: err}
	case errors.Is(err, ErrReleaseFailed), errors.Is(err, ErrReleaseAwaitingApproval):
		return &ExitError{Code: ExitFailure, Err: err}
	case err != nil:
		return err
	}
	if a.format != formatTable {
		return nil
	}
	if deleting {
		a.printf("release %s: deleted\n", name)
		return nil
	}
	a.printf("release %s: revision %d applied, %s\n", name, rel.GetAppliedRevision(), syncName(rel.GetSync()))
	return nil
}

// waitRelease polls GetRelease with capped exponential backoff until the
// release has applied revision (in sync or drifted), failed, or, when
// deleting, is gone. On timeout the error wraps ErrReleaseWaitTimeout; on failure
// ErrReleaseFailed with the release's last error.
func (a *app) waitRelease(ctx context.Context, client outpostv1connect.OperatorServiceClient, env, name string, revision int64, deleting bool, timeout time.Duration) (*v1.Release, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, ErrWaitTimeout)
		defer cancel()
	}
	policy := backoff.Policy{Base: a.opts.PollInterval, Max: a.opts.MaxPollInterval}
	var last *v1.Release
	for n := int64(0); ; n++ {
		res, err := client.GetRelease(ctx, connect.NewRequest(&v1.GetReleaseRequest{Environment: env, Name: name}))
		switch {
		case ctx.Err() != nil:
			return last, releaseWaitEnded(ctx, name, last, timeout)
		case deleting && connect.CodeOf(err) == connect.CodeNotFound:
			return last, nil
		case err == nil:
			last = res.Msg.GetRelease()
			switch last.GetSync() {
			case v1.ReleaseSync_RELEASE_SYNC_FAILED:
				return last, fmt.Errorf("%w: %s: %s; see `outpost release get %s --env %s`", ErrReleaseFailed, name, orDash(last.GetLastError()), name, env)
			case v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL:
				if !deleting {
					return last, fmt.Errorf("%w: %s revision %d: %s; review it with `outpost release approve %s --env %s`", ErrReleaseAwaitingApproval, name, last.GetRevision(), orDash(last.GetLastError()), name, env)
				}
			case v1.ReleaseSync_RELEASE_SYNC_IN_SYNC, v1.ReleaseSync_RELEASE_SYNC_DRIFTED:
				if !deleting && last.GetAppliedRevision() >= revision {
					return last, nil
				}
			}
		case !transient(err):
			return last, apiError("wait for release "+name, err)
		}
		if policy.Sleep(ctx, n) != nil {
			return last, releaseWaitEnded(ctx, name, last, timeout)
		}
	}
}

// releaseWaitEnded explains why a release wait's context ended.
func releaseWaitEnded(ctx context.Context, name string, last *v1.Release, timeout time.Duration) error {
	if !errors.Is(context.Cause(ctx), ErrWaitTimeout) {
		return fmt.Errorf("wait for release %s: %w", name, context.Cause(ctx))
	}
	state := "not seen yet"
	if last != nil {
		state = fmt.Sprintf("still %s, revision %s applied of %d", syncName(last.GetSync()), revisionOrNone(last.GetAppliedRevision()), last.GetRevision())
	}
	return fmt.Errorf("%w %s after %v (%s); follow it with `outpost release get %s`", ErrReleaseWaitTimeout, name, timeout, state, name)
}
