package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
)

// maxSpecBytes bounds a task spec read from a file or stdin.
const maxSpecBytes = 4 << 20

func (a *app) newTaskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "task",
		Aliases: []string{"tasks"},
		Short:   "Run, inspect, cancel and wait for tasks",
	}
	cmd.AddCommand(a.newTaskRunCommand(), a.newTaskGetCommand(), a.newTaskListCommand(),
		a.newTaskCancelCommand(), a.newTaskWaitCommand())
	return cmd
}

// taskRunFlags are the flags of `task run`.
type taskRunFlags struct {
	env, kind, id string
	specFile      string
	specJSON      string
	conflictKeys  []string
	artifacts     []string
	maxAttempts   int32
	timeout       time.Duration
	wait          bool
	manifests     manifestsFlags
	helm          helmFlags
}

func (a *app) newTaskRunCommand() *cobra.Command {
	var f taskRunFlags
	cmd := &cobra.Command{
		Use:   "run --env NAME (--kind KIND (--spec FILE|- | --spec-json JSON) | --kind manifests --release NAME --bundle FILE|DIR | --kind helm --release NAME --namespace NS --chart DIR|FILE.tgz|oci://...) [flags]",
		Short: "Queue a task, optionally with artifacts, and optionally wait for it",
		Long: `run queues one task for an environment. The spec is the kind's JSON document.

--id is the task's idempotency key: running the same command again with the
same --id returns the existing task instead of queueing a second one. It
defaults to a random id. Each --artifact FILE is uploaded first and its digest
attached to the task. With --wait, run waits for the task to finish and exits
1 if it failed or was cancelled.

For manifests tasks, --release and --bundle build the spec from YAML and JSON
files (a directory contributes its *.yaml, *.yml and *.json files, sorted).
The bundle travels inline, or as an uploaded artifact when it is larger than
256 KiB, and the task gets the conflict key manifests/RELEASE so that two
revisions of one release never apply at once:

  outpost task run --env prod --kind manifests --release web --bundle deploy/web/ --wait

For helm tasks, --release, --namespace and the helm flags build the spec.
--helm-action is install (the default, helm upgrade --install), upgrade,
rollback, uninstall, status or history. A chart directory given to --chart
is packed here, reproducibly and honouring .helmignore; a chart archive is
sent as it is; --repo URL --chart-name NAME and --chart oci://host/path/chart
let the agent fetch it, with --password as a vault reference, never the
password itself. -f/--values files merge left to right, then --set, as with
helm. The chart travels inline, or as an uploaded artifact when it is larger
than 256 KiB, and the task gets the conflict key helm/NAMESPACE/RELEASE.
--helm-wait and --helm-timeout are helm's --wait and --timeout; --wait and
--timeout remain those of the task:

  outpost task run --env prod --release shop --namespace shop --chart ./charts/shop \
    -f prod.yaml --set image.tag=1.4.2 --helm-wait --wait
  outpost task run --env prod --release shop --namespace shop --helm-action rollback --rollback-to 3 --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runTask(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.env, "env", "", "environment to run in (required)")
	fl.StringVar(&f.kind, "kind", "", "task kind, e.g. manifests, helm, terraform, http (required)")
	fl.StringVar(&f.specFile, "spec", "", "file holding the JSON spec, or - for stdin")
	fl.StringVar(&f.specJSON, "spec-json", "", "the JSON spec inline")
	fl.StringVar(&f.id, "id", "", "task id and idempotency key (default: random)")
	fl.StringArrayVar(&f.conflictKeys, "conflict-key", nil, "resource the task touches; tasks sharing a key never run at once (repeatable)")
	fl.StringArrayVar(&f.artifacts, "artifact", nil, "file to upload and attach to the task (repeatable)")
	fl.Int32Var(&f.maxAttempts, "max-attempts", 0, "attempts before the task fails (default: the hub's, 3)")
	fl.DurationVar(&f.timeout, "timeout", 0, "time allowed from queueing to completion (default: none)")
	fl.BoolVar(&f.wait, "wait", false, "wait for the task to finish; exit 1 if it failed or was cancelled")
	f.manifests.bind(fl)
	f.helm.bind(fl)
	return cmd
}

func (a *app) runTask(cmd *cobra.Command, f taskRunFlags) error {
	if f.env == "" || (f.kind == "" && !f.manifests.used() && !f.helm.used()) {
		return errors.New("task run: pass --env NAME and --kind KIND")
	}
	if f.maxAttempts < 0 || f.timeout < 0 {
		return errors.New("task run: --max-attempts and --timeout must not be negative")
	}
	var (
		spec      []byte
		manifests *manifestsTask
		helm      *helmTask
		err       error
	)
	switch {
	case f.buildsHelm():
		helm, err = a.prepareHelm(&f)
	case f.manifests.used():
		manifests, err = prepareManifests(&f)
	default:
		spec, err = a.readSpec(f)
	}
	if err != nil {
		return fmt.Errorf("task run: %w", err)
	}
	client, _, err := a.dial()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	req := &v1.EnqueueTaskRequest{
		Id:           f.id,
		Environment:  f.env,
		Kind:         f.kind,
		Spec:         spec,
		ConflictKeys: f.conflictKeys,
		MaxAttempts:  f.maxAttempts,
	}
	if req.Id == "" {
		req.Id = uuid.NewString()
	}
	if f.timeout > 0 {
		req.Timeout = durationpb.New(f.timeout)
	}
	for _, path := range f.artifacts {
		digest, err := uploadArtifact(ctx, client, path)
		if err != nil {
			return fmt.Errorf("task run: %w", err)
		}
		a.notef("Uploaded %s as %s.", path, digest)
		req.Artifacts = append(req.Artifacts, digest)
	}
	if manifests != nil {
		if err := a.addManifests(ctx, client, manifests, req); err != nil {
			return fmt.Errorf("task run: %w", err)
		}
	}
	if helm != nil {
		if err := a.addHelm(ctx, client, helm, req); err != nil {
			return fmt.Errorf("task run: %w", err)
		}
	}
	res, err := client.EnqueueTask(ctx, connect.NewRequest(req))
	if err != nil {
		return apiError("task run", err)
	}
	task := res.Msg.GetTask()
	if res.Msg.GetCreated() {
		a.notef("Queued task %s.", task.GetId())
	} else {
		a.notef("Task %s already existed; nothing new was queued.", task.GetId())
	}
	if !f.wait {
		return a.printMessage(res.Msg, func(w io.Writer) { a.taskTable(w, []*v1.Task{task}) })
	}
	return a.waitAndReport(ctx, client, task.GetId(), 0)
}

// readSpec returns the task spec from --spec or --spec-json, checked to be JSON.
func (a *app) readSpec(f taskRunFlags) ([]byte, error) {
	var spec []byte
	switch {
	case (f.specFile == "") == (f.specJSON == ""):
		return nil, errors.New("pass the task spec with exactly one of --spec FILE (or - for stdin) and --spec-json JSON")
	case f.specJSON != "":
		spec = []byte(f.specJSON)
	default:
		r := a.opts.Stdin
		name := "stdin"
		if f.specFile != "-" {
			file, err := os.Open(f.specFile) //nolint:gosec // the operator names the spec file
			if err != nil {
				return nil, fmt.Errorf("read spec: %w", err)
			}
			defer closeQuietly(file)
			r, name = file, f.specFile
		}
		b, err := io.ReadAll(io.LimitReader(r, maxSpecBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read spec from %s: %w", name, err)
		}
		if len(b) > maxSpecBytes {
			return nil, fmt.Errorf("spec in %s is larger than %d bytes: ship large content as an --artifact", name, maxSpecBytes)
		}
		spec = b
	}
	if !json.Valid(spec) {
		return nil, errors.New("the task spec is not valid JSON")
	}
	return spec, nil
}

func (a *app) newTaskGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a task with its spec and result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.GetTask(cmd.Context(), connect.NewRequest(&v1.GetTaskRequest{Id: args[0]}))
			if err != nil {
				return apiError("get task "+args[0], err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.taskDetail(w, res.Msg.GetTask()) })
		},
	}
}

func (a *app) newTaskListCommand() *cobra.Command {
	var (
		env, state, pageToken string
		limit                 int32
		all                   bool
	)
	cmd := &cobra.Command{
		Use:   "list [--env NAME] [--state STATE] [--limit N] [--all]",
		Short: "List tasks, newest first, one page or --all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseTaskState(state)
			if err != nil {
				return fmt.Errorf("task list: %w", err)
			}
			if limit < 0 {
				return errors.New("task list: --limit must not be negative")
			}
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			out := &v1.ListTasksResponse{}
			seen := map[string]bool{}
			for {
				res, err := client.ListTasks(cmd.Context(), connect.NewRequest(&v1.ListTasksRequest{
					Environment: env, State: st, Limit: limit, PageToken: pageToken,
				}))
				if err != nil {
					return apiError("list tasks", err)
				}
				out.Tasks = append(out.Tasks, res.Msg.GetTasks()...)
				pageToken = res.Msg.GetNextPageToken()
				if !all || pageToken == "" {
					break
				}
				if seen[pageToken] {
					return fmt.Errorf("list tasks: the hub returned page token %q twice; stopping", pageToken)
				}
				seen[pageToken] = true
			}
			out.NextPageToken = pageToken
			if pageToken != "" && a.format == formatTable {
				a.notef("More tasks: add --all, or --page-token %s for the next page.", pageToken)
			}
			return a.printMessage(out, func(w io.Writer) { a.taskTable(w, out.GetTasks()) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&env, "env", "", "only tasks of this environment")
	fl.StringVar(&state, "state", "", "only tasks in this state: queued, leased, succeeded, failed, cancelled")
	fl.Int32Var(&limit, "limit", 0, "tasks per page (default: the hub's)")
	fl.BoolVar(&all, "all", false, "follow next-page tokens and list every task")
	fl.StringVar(&pageToken, "page-token", "", "continue a listing from this token")
	return cmd
}

func (a *app) newTaskCancelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued task, or ask the agent to stop a running one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.CancelTask(cmd.Context(), connect.NewRequest(&v1.CancelTaskRequest{Id: args[0]}))
			if err != nil {
				return apiError("cancel task "+args[0], err)
			}
			if t := res.Msg.GetTask(); !isTerminal(t.GetState()) {
				a.notef("Cancellation requested; the agent stops the task at its next renewal. Follow it with `outpost task wait %s`.", t.GetId())
			}
			return a.printMessage(res.Msg, func(w io.Writer) { a.taskTable(w, []*v1.Task{res.Msg.GetTask()}) })
		},
	}
}

func parseTaskState(s string) (v1.TaskState, error) {
	if s == "" {
		return v1.TaskState_TASK_STATE_UNSPECIFIED, nil
	}
	v, ok := v1.TaskState_value["TASK_STATE_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown task state %q: use queued, leased, succeeded, failed or cancelled", s)
	}
	return v1.TaskState(v), nil
}

func stateName(s v1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

func isTerminal(s v1.TaskState) bool {
	switch s {
	case v1.TaskState_TASK_STATE_SUCCEEDED, v1.TaskState_TASK_STATE_FAILED, v1.TaskState_TASK_STATE_CANCELLED:
		return true
	}
	return false
}

func (a *app) taskTable(w io.Writer, tasks []*v1.Task) {
	row(w, "ID", "ENVIRONMENT", "KIND", "STATE", "ATTEMPT", "AGENT", "CREATED", "UPDATED")
	for _, t := range tasks {
		row(w, t.GetId(), envName(t.GetTenant(), t.GetEnvironment()), t.GetKind(), stateName(t.GetState()), attempts(t),
			orDash(t.GetAgentId()), a.when(t.GetCreatedAt()), a.ago(t.GetUpdatedAt()))
	}
}

func attempts(t *v1.Task) string {
	if t.GetMaxAttempts() == 0 {
		return strconv.FormatInt(t.GetAttempt(), 10)
	}
	return fmt.Sprintf("%d/%d", t.GetAttempt(), t.GetMaxAttempts())
}

// taskDetail is the `task get` view: one field per line, then the spec
// and result as indented JSON.
func (a *app) taskDetail(w io.Writer, t *v1.Task) {
	field := func(name, value string) {
		if value != "" && value != "-" {
			row(w, name+":", value)
		}
	}
	field("ID", t.GetId())
	field("ENVIRONMENT", envName(t.GetTenant(), t.GetEnvironment()))
	field("KIND", t.GetKind())
	state := stateName(t.GetState())
	if t.GetCancelRequested() && !isTerminal(t.GetState()) {
		state += " (cancel requested)"
	}
	field("STATE", state)
	field("ATTEMPT", attempts(t))
	field("AGENT", t.GetAgentId())
	field("CONFLICT KEYS", strings.Join(t.GetConflictKeys(), ", "))
	field("ARTIFACTS", strings.Join(t.GetArtifacts(), ", "))
	field("CREATED", a.when(t.GetCreatedAt()))
	field("UPDATED", a.when(t.GetUpdatedAt()))
	field("NOT BEFORE", a.when(t.GetNotBefore()))
	field("LEASE EXPIRES", a.when(t.GetLeaseExpiresAt()))
	field("DEADLINE", a.when(t.GetDeadline()))
	field("FINISHED", a.when(t.GetFinishedAt()))
	field("ERROR", t.GetError())
	if t.GetKind() == taskspec.KindHelm && a.helmDetail(w, t) {
		return
	}
	linef(w, "SPEC:\n%s\n", prettyJSON(t.GetSpec(), "  "))
	if len(t.GetResult()) > 0 {
		linef(w, "RESULT:\n%s\n", prettyJSON(t.GetResult(), "  "))
	}
}
