package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// Sentinel errors, wrapped with what went wrong.
var (
	// ErrNoBackend reports an executor configured without a state backend:
	// state in the run's temporary directory would be lost. Terminal.
	ErrNoBackend = errors.New("no state backend configured")
	// ErrModule reports a module that could not be fetched, or an archive
	// that was refused (unsafe paths, links, over a cap, no configuration).
	ErrModule = errors.New("module")
	// ErrVariable reports a sensitive variable whose reference did not
	// resolve.
	ErrVariable = errors.New("variable")
	// ErrWorkDir reports a failure to prepare the run's directory.
	ErrWorkDir = errors.New("working directory")
	// ErrCLI reports a failed OpenTofu/Terraform command; its message is
	// the command's, with every secret value of the task redacted.
	ErrCLI = errors.New("tofu")
	// ErrConfig reports a module or inputs the CLI refused: invalid HCL,
	// an unsupported argument, an undeclared reference, a missing
	// required variable. It wraps ErrCLI and is terminal.
	ErrConfig = errors.New("module configuration")
	// ErrStateLocked reports a state another client has locked, which the
	// executor could not prove abandoned. Retryable.
	ErrStateLocked = errors.New("state locked")
	// ErrFenced reports a workspace whose fence another run held and
	// renewed until the run's context ended (the run waits for it
	// otherwise), or a fence that could not be claimed. Retryable: it is
	// free once that run ends or its fence expires.
	ErrFenced = errors.New("workspace fenced")
	// ErrFenceLost reports a run stopped because it could not keep its
	// fence: the Lease was taken, deleted, or not renewed in time.
	// Retryable.
	ErrFenceLost = errors.New("fencing lost")
)

// Environment variables the executor sets itself.
const (
	envCheckpoint = "CHECKPOINT_DISABLE"
	envCLIConfig  = "TF_CLI_CONFIG_FILE"
	envHome       = "HOME"
	envDataDir    = "TF_DATA_DIR"
	envWorkspace  = "TF_WORKSPACE"
)

// Log keys.
const (
	logTask      = "task"
	logWorkspace = "workspace"
	logAction    = "action"
	logPhase     = "phase"
	logElapsed   = "elapsed"
	logApproval  = "approval"
	logDigest    = "digest"
	logAdd       = "add"
	logChange    = "change"
	logDestroy   = "destroy"
	logRemoved   = "removed"
)

// Redacted replaces a sensitive output's value and any secret in an error.
const Redacted = "[REDACTED]"

// maxErrorBytes caps the CLI's diagnostics kept in an error.
const maxErrorBytes = 8 << 10

// Names inside a run's directory, beside the module.
const (
	backendFile  = "zzz_outpost_backend_override.tf.json"
	varFileName  = "outpost.tfvars.json"
	planFileName = "outpost.tfplan"
	cliConfig    = "cli.tfrc"
	moduleDir    = "module"
	dataDir      = "data"
)

// Executor runs terraform tasks with the CLI at Options.TofuPath. It is
// safe for concurrent use. Tasks on the same workspace should be
// serialized by the caller (the conflict key "tf/<workspace>"); with the
// kubernetes backend a fence Lease also keeps two runs, on any replicas,
// from running the CLI on one workspace at once.
type Executor struct {
	opts Options
	// host is this machine's name as OpenTofu writes it after the '@' in
	// a state lock's Who; empty when unknown.
	host string
}

var _ executor.Executor = (*Executor)(nil)

// New returns an Executor over opts, after opts.Validate. It removes the
// working directories that killed runs left under Options.WorkRoot.
func New(opts Options) (*Executor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// A WorkRoot that cannot be read fails each run, which says why.
	if n, err := sweepWorkRoot(opts.WorkRoot, time.Now(), opts.Logger); err != nil {
		opts.Logger.Warn("terraform: sweeping the work root failed", "error", err.Error())
	} else if n > 0 {
		opts.Logger.Info("terraform: removed working directories of killed runs", logRemoved, n)
	}
	// Without a host name no lock is ever recognized as this host's.
	host, _ := os.Hostname()
	return &Executor{opts: opts, host: host}, nil
}

// Execute runs the task: decode and validate its spec, unpack its module
// into a private directory removed afterwards, claim the workspace's fence
// (with the kubernetes backend), then init, plan, and (for apply and
// destroy) apply that plan and read the outputs, unless the approval
// policy holds the plan. An invalid spec, a refused archive, an
// unresolvable variable, a missing backend and a configuration error are
// terminal; other failures may be retried (apply is idempotent).
func (e *Executor) Execute(ctx context.Context, t executor.Task) (json.RawMessage, error) {
	var s taskspec.Terraform
	if err := taskspec.Decode(t.Spec, &s); err != nil {
		return nil, executor.Terminal(fmt.Errorf("terraform: %w", err))
	}
	if e.opts.KubeBackend == nil && e.opts.LocalStateDir == "" {
		return nil, executor.Terminal(fmt.Errorf("terraform: %w: the agent needs a kubernetes backend for terraform state; set one in its configuration", ErrNoBackend))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout())*time.Second)
	defer cancel()
	log := e.opts.Logger.With(logTask, t.ID, logWorkspace, s.Workspace, logAction, s.EffectiveAction())

	r := &run{e: e, spec: &s, task: t, log: log}
	res, err := r.run(ctx)
	if err != nil {
		log.Warn("terraform task failed", "error", err.Error())
		return nil, err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("terraform: result: %w", err)
	}
	return out, nil
}

// run is one attempt of one task.
type run struct {
	e       *Executor
	spec    *taskspec.Terraform
	task    executor.Task
	log     *slog.Logger
	secrets []string
	tf      *tfexec.Terraform
	// inputs digest the module and plain variables for the plan digest.
	inputs planInputs
	// fence is set while the run holds the workspace's fence: a state
	// lock it meets that the previous holder's host took before this run
	// claimed the fence was left by a run that is gone.
	fence *fence
}

func (r *run) run(ctx context.Context) (*taskspec.TerraformResult, error) {
	s := r.spec
	// Resolve secrets first: a missing one fails the task before anything
	// is fetched or run.
	vars, err := r.variables(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(vars)

	data, err := r.e.moduleArchive(ctx, r.task, s)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	r.inputs = newPlanInputs(data, s.Variables)
	root, err := os.MkdirTemp(r.e.opts.WorkRoot, workDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w: %w", ErrWorkDir, err)
	}
	defer func() {
		if err := os.RemoveAll(root); err != nil {
			r.log.Error("terraform: removing the working directory failed", "error", err.Error())
		}
	}()
	dir, err := r.e.extract(data, filepath.Join(root, moduleDir), s.Path)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	if err := r.e.writeBackend(dir, s.Workspace); err != nil {
		return nil, fmt.Errorf("terraform: %w: %w", ErrWorkDir, err)
	}
	varFile := filepath.Join(root, varFileName)
	closeVars, err := writeVarFile(varFile, vars)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w: %w", ErrWorkDir, err)
	}
	defer closeVars()
	clear(vars)

	tf, err := r.e.cli(root, dir)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	r.tf = tf
	if r.e.opts.KubeBackend != nil {
		fctx, f, err := r.e.claimFence(ctx, s.Workspace, r.task.ID, r.log)
		if err != nil {
			return nil, fmt.Errorf("terraform: %w", err)
		}
		defer f.release()
		ctx = fctx
		r.fence = f
	}
	return r.cliRun(ctx, tf, varFile, filepath.Join(root, planFileName))
}

func (r *run) cliRun(ctx context.Context, tf *tfexec.Terraform, varFile, planFile string) (*taskspec.TerraformResult, error) {
	s := r.spec
	action := s.EffectiveAction()
	res := &taskspec.TerraformResult{Action: action, Workspace: s.Workspace}

	if err := r.phase(ctx, "init", func(ctx context.Context) error {
		return tf.Init(ctx, tfexec.Reconfigure(true))
	}); err != nil {
		return nil, err
	}
	// The plan's machine-readable UI lists its changes, so no show -json
	// reads the plan file back; the file is still written, so exactly
	// this plan is applied.
	if err := r.phase(ctx, "plan", func(ctx context.Context) error {
		var changes planStream
		st := newUIStream(r.redact, changes.message)
		defer tf.SetStdout(nil)
		hasChanges, err := tf.PlanJSON(ctx, st, tfexec.Out(planFile), tfexec.VarFile(varFile),
			tfexec.Parallelism(s.EffectiveParallelism()), tfexec.Destroy(action == taskspec.TerraformDestroy))
		if err != nil {
			return st.failed(err)
		}
		if err := st.finish(); err != nil {
			return err
		}
		res.Plan.HasChanges = hasChanges
		return changes.summarize(&res.Plan, action == taskspec.TerraformDestroy, r.inputs)
	}); err != nil {
		return nil, err
	}
	if action == taskspec.TerraformPlan {
		return res, nil
	}
	if s.Holds(res.Plan) {
		if res.Plan.Digest != s.ApprovedPlan {
			// Nothing is applied and the state is left as it was; the
			// operator approves this digest and the task runs again.
			r.log.Info("terraform plan held for approval", logApproval, s.Approval, logDigest, res.Plan.Digest,
				logAdd, res.Plan.Add, logChange, res.Plan.Change, logDestroy, res.Plan.Destroy)
			res.AwaitingApproval = true
			return res, nil
		}
		r.log.Info("terraform plan approved", logApproval, s.Approval, logDigest, res.Plan.Digest)
	}
	// The apply's machine-readable UI ends with the outputs, so no output
	// command reads them; a plan without changes is not applied, and
	// only then are they read from the state.
	var outputs map[string]outputStream
	if res.Plan.HasChanges {
		if err := r.phase(ctx, "apply", func(ctx context.Context) error {
			outputs = nil
			st := newUIStream(r.redact, func(m *uiMessage) {
				if m.Type == msgOutputs && m.Outputs != nil {
					outputs = m.Outputs
				}
			})
			defer tf.SetStdout(nil)
			if err := tf.ApplyJSON(ctx, st, tfexec.DirOrPlan(planFile), tfexec.Parallelism(s.EffectiveParallelism())); err != nil {
				return st.failed(err)
			}
			// A stream cut short only loses the outputs, read below.
			if err := st.finish(); err != nil {
				outputs = nil
				r.log.Warn("terraform apply output not read; reading the outputs from the state", "error", err.Error())
			}
			return nil
		}); err != nil {
			return nil, r.recoverState(ctx, err)
		}
		res.Changed = true
	}
	if action == taskspec.TerraformDestroy {
		return res, nil
	}
	if outputs == nil {
		if err := r.phase(ctx, "output", func(ctx context.Context) error {
			outs, err := tf.Output(ctx)
			if err != nil {
				return err
			}
			outputs = make(map[string]outputStream, len(outs))
			for name, o := range outs {
				outputs[name] = outputStream{Sensitive: o.Sensitive, Value: o.Value}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	res.Outputs, res.OutputsOmitted = capOutputs(outputs)
	clear(outputs)
	return res, nil
}

// capOutputs returns the outputs, sensitive ones redacted, in name order
// until their encoding would pass taskspec.MaxTerraformOutputsBytes, and
// the names of the rest.
func capOutputs(outputs map[string]outputStream) (map[string]json.RawMessage, []string) {
	names := slices.Sorted(maps.Keys(outputs))
	kept := make(map[string]json.RawMessage, len(outputs))
	size := len("{}")
	for i, name := range names {
		o := outputs[name]
		value := json.RawMessage(`"` + Redacted + `"`)
		if !o.Sensitive {
			// Encoded as the result will be: compact, HTML escaped.
			enc, err := json.Marshal(o.Value)
			if err != nil {
				// Not JSON: the result could not be encoded.
				return kept, names[i:]
			}
			value = enc
		}
		key, _ := json.Marshal(name)
		n := len(key) + 1 + len(value)
		if len(kept) > 0 {
			n++
		}
		if size+n > taskspec.MaxTerraformOutputsBytes {
			return kept, names[i:]
		}
		size += n
		kept[name] = value
	}
	return kept, nil
}

// phase runs one CLI command, logs it, and turns its failure into an error
// that wraps ErrCLI and carries the CLI's diagnostics with every secret of
// the task redacted. The CLI's own error is not wrapped, so no caller can
// reach the unredacted text. A state lock met while the run holds the
// workspace's fence and that the previous holder's host (or this one)
// took before this run claimed the fence was left by a run that is gone:
// it is broken and the command run once more. Any other lock is left to
// its holder. Configuration errors are terminal.
func (r *run) phase(ctx context.Context, name string, f func(context.Context) error) error {
	err := r.attempt(ctx, name, f)
	if err != nil && ctx.Err() == nil && r.fence != nil && isStateLocked(err.Error()) {
		if uerr := r.breakLock(ctx); errors.Is(uerr, ErrStateLocked) {
			return fmt.Errorf("terraform: %s: %w: %w", name, ErrCLI, uerr)
		} else if uerr != nil {
			return fmt.Errorf("terraform: %s: %w: %w: %w", name, ErrCLI, ErrStateLocked, uerr)
		}
		err = r.attempt(ctx, name, f)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("terraform: %s: %w: %w", name, ErrCLI, context.Cause(ctx))
	}
	msg := strings.TrimSpace(r.redact(err.Error()))
	if isStateLocked(msg) {
		li := parseLockInfo(msg)
		return fmt.Errorf("terraform: %s: %w: %w: workspace %s is locked by %s; retry once it is released", name, ErrCLI, ErrStateLocked, r.spec.Workspace, li.describe())
	}
	config := isConfigError(msg)
	if len(msg) > maxErrorBytes {
		msg = msg[:maxErrorBytes] + "… (truncated)"
	}
	if config {
		return executor.Terminal(fmt.Errorf("terraform: %s: %w: %w: %s", name, ErrCLI, ErrConfig, msg))
	}
	return fmt.Errorf("terraform: %s: %w: %s", name, ErrCLI, msg)
}

// attempt runs one CLI command once and logs it.
func (r *run) attempt(ctx context.Context, name string, f func(context.Context) error) error {
	start := time.Now()
	err := f(ctx)
	r.log.Info("terraform phase", logPhase, name, logElapsed, time.Since(start).Round(time.Millisecond).String(), "ok", err == nil)
	return err
}

// redact replaces every secret of the task in s, longest first so that a
// secret containing another is replaced whole.
func (r *run) redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	return s
}

// variables resolves the sensitive variables, registers their values with
// the task's redactor, and returns the variable file's content: plain and
// sensitive variables as one JSON object.
func (r *run) variables(ctx context.Context) ([]byte, error) {
	s := r.spec
	all := make(map[string]any, len(s.Variables)+len(s.SensitiveVariables))
	for name, v := range s.Variables {
		all[name] = v
	}
	names := make([]string, 0, len(s.SensitiveVariables))
	for name := range s.SensitiveVariables {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ref, err := vault.ParseRef(s.SensitiveVariables[name])
		if err != nil {
			return nil, executor.Terminal(fmt.Errorf("terraform: %w: sensitive_variables.%s: %w", ErrVariable, name, err))
		}
		v, err := r.e.opts.Vault.Resolve(ctx, ref)
		if err != nil {
			err = fmt.Errorf("terraform: %w: sensitive_variables.%s (%s): %w", ErrVariable, name, ref, err)
			if vault.IsPermanent(err) {
				return nil, executor.Terminal(err)
			}
			return nil, err
		}
		if r.task.Redact != nil {
			r.task.Redact.AddSecret(v)
		}
		if v != "" {
			r.secrets = append(r.secrets, v)
		}
		all[name] = v
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return json.Marshal(all)
}

// writeBackend points the module at the configured state backend with an
// override file, which replaces any backend the module declares.
func (e *Executor) writeBackend(dir, workspace string) error {
	var backend map[string]any
	if b := e.opts.KubeBackend; b != nil {
		cfg := map[string]any{"secret_suffix": workspace, "namespace": b.Namespace}
		if b.ConfigPath == "" {
			cfg["in_cluster_config"] = true
		} else {
			cfg["config_path"] = b.ConfigPath
			if b.ConfigContext != "" {
				cfg["config_context"] = b.ConfigContext
			}
		}
		backend = map[string]any{"kubernetes": cfg}
	} else {
		backend = map[string]any{"local": map[string]any{"path": filepath.Join(e.opts.LocalStateDir, workspace+".tfstate")}}
	}
	data, err := json.Marshal(map[string]any{"terraform": map[string]any{"backend": backend}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, backendFile), data, 0o600)
}

// cli returns the CLI for the module in dir, with an environment made only
// of the executor's settings and Options.Env.
func (e *Executor) cli(root, dir string) (*tfexec.Terraform, error) {
	cfg := filepath.Join(root, cliConfig)
	if err := os.WriteFile(cfg, cliConfigContent(e.opts.PluginCacheDir), 0o600); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWorkDir, err)
	}
	tf, err := tfexec.NewTerraform(dir, e.opts.TofuPath)
	if err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: %w", ErrCLI, err))
	}
	// The data directory lies outside the module, so a .terraform
	// directory shipped in the archive (providers, modules, backend state)
	// is never used.
	env := map[string]string{
		envCheckpoint: "1",
		envCLIConfig:  cfg,
		envHome:       root,
		envDataDir:    filepath.Join(root, dataDir),
	}
	// The kubernetes backend's in-cluster configuration finds the API
	// server through the variables every pod gets.
	if b := e.opts.KubeBackend; b != nil && b.ConfigPath == "" {
		for _, k := range []string{"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	}
	for _, kv := range e.opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if err := tf.SetEnv(env); err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: %w", ErrCLI, err))
	}
	// A cancelled CLI is interrupted, so that it finishes its in-flight
	// operations and saves state, and killed if it has not exited after
	// this delay (terraform-exec's default is a minute): it must be gone
	// before the run's fence can expire.
	if err := tf.SetWaitDelay(cliWaitDelay(e.opts.FenceDuration)); err != nil {
		return nil, executor.Terminal(fmt.Errorf("%w: %w", ErrCLI, err))
	}
	return tf, nil
}
