// Package terraform runs terraform tasks: an OpenTofu (or Terraform) module
// planned, applied or destroyed through the CLI, driven by
// github.com/hashicorp/terraform-exec.
//
// Each run extracts the module into a fresh private directory that is
// removed afterwards, points the module at the state backend the agent is
// configured with (the kubernetes backend, one state per workspace), plans
// to a plan file, summarizes that plan, applies exactly it, and reports the
// outputs with the sensitive ones redacted. The summary and the outputs
// come from the machine-readable UI (-json) of plan and apply, so a run
// costs init, plan and apply, and no show or output command. Sensitive input variables are
// resolved from vault references and reach the CLI through an in-memory
// file, never through its command line, its environment or the disk. The
// CLI's environment is made only of the executor's settings and
// Options.Env, which takes workload-identity settings (IdentityEnvNames)
// and refuses long-lived cloud keys.
//
// # Module sources
//
// A module comes inline, as a hub artifact, from an https URL, or from an
// OCI registry (oci://host/repository:tag or @sha256:<digest>). An OCI
// artifact has exactly one layer, a gzip'd tar (OCI layer tar+gzip,
// application/tar+gzip, Flux content or a Docker gzip layer), pulled
// through the agent's HTTP client (plain HTTP only with plain_http), its
// size checked against Options.MaxModuleBytes before the download and its
// digest verified. Registry credentials are vault references, registered
// with the task's redactor and never reported. Every archive then passes
// the same extraction rules as charts (internal/archive). Unknown
// references, refused credentials and malformed or oversized artifacts are
// terminal; network failures and 5xx answers may be retried.
//
// # Approval
//
// The plan summary lists each changed resource with its action (create,
// update, delete, replace) and a digest of that list: sha256 over the
// addresses and actions in plan order, whether it is a destroy plan, the
// sha256 of the module archive's bytes and the sha256 of the plain
// variables' canonical JSON; never over values of sensitive variables or
// resources, which can be secrets. A module re-pushed under the same tag
// or URL, or other variables, so need a new approval. When the task's approval policy
// holds the plan (destroy: anything deleted or replaced; always: any
// change) and the digest is not the task's approved plan, nothing is
// applied: the task succeeds with AwaitingApproval, and the same task with
// that digest approved applies a plan that does the same.
//
// # Fencing
//
// A run killed in the middle of an apply (the agent's pod deleted, the
// node lost, kill -9) leaves the backend's state lock behind: the Lease
// lock-tfstate-default-<workspace> whose holder is the lock ID. Breaking a
// lock is only safe when its holder is provably no longer running, which
// the lock itself cannot tell. So with the kubernetes backend every run
// first claims a second Lease, the fence outpost-tf-<workspace>, held by
// Options.Holder and the task's ID:
//
//   - While another run holds the fence (renewed less than its duration
//     ago) the run waits, polling with a jittered backoff, until the fence
//     is released or expires; only the run's context ending first fails it,
//     with the retryable ErrFenced naming the holder. An expired or
//     released fence is taken over, with optimistic concurrency on its
//     resourceVersion.
//   - The run renews the fence every third of Options.FenceDuration, until
//     its CLI has exited: a run whose context ends (timeout, hub lease
//     lost) keeps renewing while its interrupted CLI finishes. When it
//     finds the fence deleted or taken, or no renewal succeeded for two
//     thirds of the duration, it cancels its own context and fails with
//     the retryable ErrFenceLost. A cancelled CLI is interrupted and, if
//     it has not exited min(duration/6, 5 s) later, killed (terraform-exec
//     also sets the parent-death signal, so a killed agent takes its CLI
//     along): a run that stops renewing at last renewal + 2/3·d has no CLI
//     left by 5/6·d, before the fence expires at d; the last sixth absorbs
//     the exit and clock skew between replicas.
//   - The fence names its holder's host (annotation
//     outpost.dev/holder-host, the host OpenTofu writes after the '@' in
//     a lock's Who). When the run ends the fence is released, not
//     deleted: its holder is cleared, with a precondition on its
//     resourceVersion so that a successor's fence is never touched, and
//     the annotation stays, so the next holder knows which host ran last.
//   - So a run that holds the fence knows every earlier holder has stopped
//     its CLI, and a state lock it meets that the previous holder's host
//     (or its own) took before it claimed the fence is abandoned: it
//     force-unlocks that lock, logging who held it for which operation
//     since when, and runs the command once more. Any other lock (a
//     person's tofu against the same backend, an agent that predates the
//     fence) is never broken: the run fails with the retryable
//     ErrStateLocked naming the lock's holder.
//
// Without the kubernetes backend (local state, for tests) there is no
// fence and a locked state is never broken: the run fails with the
// retryable ErrStateLocked naming the lock's holder.
//
// # Errored state
//
// When the backend cannot save the state after an apply, the CLI writes
// it to errored.tfstate in the run's directory, which is removed after
// the run. The executor pushes it back (tofu state push, a few times with
// backoff, while it still holds the fence) and fails retryably saying so;
// if no push succeeds it keeps the state in the Secret
// tfstate-errored-<workspace> of the backend's namespace (key tfstate)
// and fails with the terminal ErrStateNotSaved, which gives the command
// that pushes it back. The state is never logged.
//
// # Errors
//
// Errors are terminal (executor.Terminal) when no retry can fix them: an
// invalid spec, a refused module archive, an unresolvable variable, and
// configuration errors the CLI reports (ErrConfig: invalid HCL,
// unsupported arguments, undeclared references, missing required
// variables). A locked state, a fenced workspace, an unreachable backend,
// a deadline or a network failure are retryable.
package terraform
