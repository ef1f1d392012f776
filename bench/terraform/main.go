// Command terraform benchmarks the agent's terraform task kind against the
// OpenTofu CLI run in a loop: how long applying -modules fresh modules
// takes when the agent runs them in parallel, against `tofu init && tofu
// apply -auto-approve` one module after another, and how much memory the
// agent and its tofu processes hold while it does.
//
// # What runs
//
// A real kube-apiserver and etcd (internal/kube/kubetest, built from source
// by hack/testbins.sh) on 127.0.0.1, used as cluster administrator by both
// contenders through the same kubeconfig; a real outpost-hub process on a
// fresh SQLite file, and one real outpost-agent process (bin/, from make
// build) started with --kubeconfig, --tofu, --terraform-namespace and
// --concurrency. Both sides run the same OpenTofu binary (v1.11.6, built
// from the module proxy by hack/tofu.sh). Everything is loopback, nothing
// is downloaded, and the program stops by itself (-timeout).
//
// The modules are generated (module.go): -resources terraform_data
// resources each (the built-in provider, so `tofu init` fetches nothing),
// whose inputs come from three variables (name, index, labels), no
// provisioners, and one output. Module i differs from the others only in
// its variables and its workspace, tf-mod-<i>. The agent gets the module
// packed inline in each task (archive) with the variables in the spec; the
// CLI gets it as a directory with terraform.tfvars.json beside it.
//
// Both sides keep state in the kubernetes backend of the same API server:
// the agent's executor writes its own backend override (a Secret
// tfstate-default-<workspace> and a lock Lease in -agent-namespace); the
// CLI's directory gets the same override pointing at -cli-namespace, with
// the workspace as secret_suffix. So both start from empty state and do
// the same work, state reads, locks and writes included.
//
// # What is measured
//
//   - agent: -modules terraform apply tasks (MaxAttempts 1), enqueued
//     through the operator API at once; the agent runs up to -concurrency
//     at a time (by default all of them). Wall = first EnqueueTask call →
//     the last task's finished_at as the hub recorded it. Per module: the
//     executor's CLI time, from the start of its init to the end of its
//     last phase (its "terraform phase" records: init, plan, apply, and
//     output when nothing was applied), and enqueue → finished, which includes the wait in the
//     queue and the hub's dispatch.
//   - CLI: for each module in turn, `tofu init -input=false` then `tofu
//     apply -auto-approve -input=false` in its directory, as a user's
//     shell loop would, with a fresh process per command. Wall = first
//     start → last exit; per module: both commands' wall time.
//   - memory, sampled every -sample while each side runs: the agent's
//     VmRSS (p50 and max of the samples) and VmHWM at the end; the sum of
//     RSS and of PSS over the agent's whole process tree (the agent and
//     its tofu children; PSS shares the tofu binary's pages fairly between
//     the processes mapping it), and the most tofu processes alive at
//     once. For the CLI: each tofu process's peak RSS (its rusage).
//   - CPU: the agent process's, its reaped tofu children's, the hub's, and
//     kube-apiserver's and etcd's, with the API requests of each side.
//
// Built-in resources are created at once, so tofu's own CPU is all there
// is to measure and a machine's cores bound what parallel applies gain.
// Real providers mostly wait on their cloud's API; -provider-latency gives
// each resource a local-exec provisioner that sleeps that long, so both
// sides wait as they would.
//
// Each side first applies one warm-up module (not measured): page cache,
// the agent's first task. Between passes the benchmark deletes the state
// Secrets and lock Leases of the pass, and the order is agent, then CLI.
//
// Usage:
//
//	make bench-terraform
//	go run ./bench/terraform -modules 20 -resources 5
//	go run ./bench/terraform -modules 40 -concurrency 10
//	go run ./bench/terraform -provider-latency 2s   # resources that take as long as a cloud API
//	go run ./bench/terraform -agent-args '--kube-qps 1000 --kube-burst 2000'
//	go run ./bench/terraform -agent=false -results ''   # the CLI loop alone, no hub or agent
//
// Results are printed as markdown and appended to -results
// (bench/RESULTS.md) with the command, date, machine and its load.
package main

import (
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/benchmain"
)

// config is what the flags ask for.
type config struct {
	modules        int
	resources      int
	latency        time.Duration
	concurrency    int
	tofu           string
	agentNamespace string
	cliNamespace   string
	results        string
	binDir         string
	agentArgs      []string
	agent          bool
	cli            bool
	sample         time.Duration
	timeout        time.Duration
	keep           bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("terraform", flag.ContinueOnError)
	fs.IntVar(&c.modules, "modules", 20, "modules each side applies, one workspace each")
	fs.IntVar(&c.resources, "resources", 5, "terraform_data resources per module")
	fs.DurationVar(&c.latency, "provider-latency", 0, "time each resource takes to create, as a cloud API would (a local-exec provisioner sleeping it; default none)")
	fs.IntVar(&c.concurrency, "concurrency", 20, "the agent's --concurrency (default: every module at once)")
	fs.StringVar(&c.tofu, "tofu", "", "OpenTofu binary both sides run (default: the one hack/tofu.sh builds)")
	fs.StringVar(&c.agentNamespace, "agent-namespace", "bench-tf-agent", "namespace of the agent's state Secrets (--terraform-namespace)")
	fs.StringVar(&c.cliNamespace, "cli-namespace", "bench-tf-cli", "namespace of the CLI's state Secrets")
	fs.StringVar(&c.results, "results", "bench/RESULTS.md", "markdown file the results are appended to (empty: none)")
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding outpost-hub and outpost-agent (make build)")
	agentArgs := fs.String("agent-args", "", "extra outpost-agent flags, space-separated, such as '--kube-qps 1000 --kube-burst 2000' (default: none, the agent as users run it)")
	fs.BoolVar(&c.agent, "agent", true, "run the agent's pass (-agent=false measures the CLI loop alone, without hub or agent; no ratio then)")
	fs.BoolVar(&c.cli, "cli", true, "run the CLI loop's pass (-cli=false measures the agent alone; no ratio then)")
	fs.DurationVar(&c.sample, "sample", 100*time.Millisecond, "how often memory is sampled while a side runs")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "stop the whole benchmark after this long")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp directory (modules, kubeconfig, hub and agent logs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.agentArgs = strings.Fields(*agentArgs)
	switch {
	case !c.agent && !c.cli:
		return c, errors.New("-agent=false and -cli=false: nothing to measure")
	case c.modules < 1 || c.modules > 500:
		return c, errors.New("-modules must be between 1 and 500")
	case c.resources < 1 || c.resources > 500:
		return c, errors.New("-resources must be between 1 and 500")
	case c.latency < 0 || c.latency > time.Minute:
		return c, errors.New("-provider-latency must be between 0 and 1m")
	case c.concurrency < 1 || c.concurrency > 256:
		return c, errors.New("-concurrency must be between 1 and 256")
	case c.agentNamespace == c.cliNamespace:
		return c, errors.New("-agent-namespace and -cli-namespace must differ, so each side starts from empty state")
	case c.sample < 10*time.Millisecond:
		return c, errors.New("-sample must be at least 10ms")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

func main() {
	benchmain.Main("terraform", parseFlags, func(c config) time.Duration { return c.timeout }, run)
}
