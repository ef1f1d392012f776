package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// summary says what is running and how to look further.
func (d *demo) summary(context.Context) error {
	if d.opts.once {
		d.out.step("What ran, and how to look further (with -once it all stops now)")
	} else {
		d.out.step("Outpost is running")
	}
	tw := tabwriter.NewWriter(d.out.w, 0, 4, 3, ' ', 0)
	fmt.Fprintf(tw, "    hub\t%s\tpid %d\tlog %s\n", d.hubURL, d.hub.pid(), d.out.path(d.hub.log))
	fmt.Fprintf(tw, "    agent\t%s in %s\tpid %d\tlog %s\n", d.agentID, d.environment, d.agent.pid(), d.out.path(d.agent.log))
	fmt.Fprintf(tw, "    payments API\t%s\tin the demo process\n", d.api.url)
	fmt.Fprintf(tw, "    kube-apiserver\t%s\tetcd beside it; no kubelet\n", d.cluster.Config.Host)
	_ = tw.Flush()

	d.out.plain("\n  Use the CLI against this hub%s:", fromDir(d.opts.binDir))
	if os.Getenv("OUTPOST_HUB") != "" || os.Getenv("OUTPOST_TOKEN") != "" {
		d.out.plain("    unset OUTPOST_HUB OUTPOST_TOKEN   # they would override the config file")
	}
	d.out.plain("    export %s=%s", stateDirVar, shellQuote(d.dir))
	d.out.plain("    export OUTPOST_CONFIG=\"$%s/%s\"", stateDirVar, cliConfigFile)
	cli := d.binaryShown(cliBinary)
	d.out.plain("    %s task list", cli)
	if n := len(d.manifestTasks); n > 0 {
		d.out.plain("    %s task get %s -o json   # the per-object outcomes", cli, d.manifestTasks[n-1])
	}
	d.out.plain("    %s task run --env %s --release %s --namespace %s --helm-action history --wait", cli, envName, helmRelease, appNamespace)
	d.out.plain("    %s audit list", cli)
	d.out.plain("    %s task run --env %s --kind http --conflict-key %s --wait \\\n        --spec-json %s", cli, envName, conflictKey, shellQuote(d.specJSON))

	d.out.plain("\n  Look at the cluster (any kubectl; `./hack/testbins.sh kubectl` builds one from source):")
	d.out.plain("    export KUBECONFIG=\"$%s/%s\"", stateDirVar, adminKubeconfig)
	d.out.plain("    kubectl get deploy,svc,cm,sa -n %s -L outpost.dev/release,outpost.dev/revision", appNamespace)
	d.out.plain("    kubectl get secrets -n %s   # the agent's identity and the release inventory", agentNamespace)
	d.out.plain("  Deploy into a real cluster instead: run outpost-agent with --kubeconfig pointing at it")
	d.out.plain("  (or in a pod, where it uses its service account) and --namespace for its own namespace.")

	d.out.plain("\n  Metrics:")
	d.out.plain("    curl --cacert \"$%s/%s\" %s/metrics", stateDirVar, caFile, d.hubURL)
	d.out.plain("\n  Logs:")
	d.out.plain("    tail -f \"$%s/%s\" \"$%s/%s\"", stateDirVar, hubLogFile, stateDirVar, agentLogFile)
	return nil
}

// fromDir says where relative binary paths in the printed commands start.
func fromDir(binDir string) string {
	if filepath.IsAbs(binDir) {
		return ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return " (from " + wd + ")"
}
