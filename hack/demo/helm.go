package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/taskspec"
)

// helmRelease is the demo's Helm release, deployed next to the manifests
// release.
const (
	helmRelease  = "storefront"
	helmChartDir = "storefront-chart"
)

//go:embed charts/storefront
var storefrontChart embed.FS

// helmDeploy installs the storefront chart, upgrades it with new values,
// rolls it back, and shows its history, each as a helm task.
func (d *demo) helmDeploy(ctx context.Context) error {
	d.out.step("A Helm release: chart %s into namespace %s (a helm task, Helm 4 SDK)", helmRelease, appNamespace)
	dir, err := d.writeChart()
	if err != nil {
		return err
	}
	install, err := d.helmTask(ctx, "storefront-1", "--chart", dir)
	if err != nil {
		return err
	}
	d.showHelmOutcomes(install)
	if note := strings.TrimSpace(install.Notes); note != "" {
		d.out.say("the chart's notes: %s", note)
	}

	d.out.step("Upgrade %s with new values (--set), then roll back to revision 1", helmRelease)
	upgrade, err := d.helmTask(ctx, "storefront-2", "--chart", dir, "--set", "replicas=3", "--set", "greeting=Winter sale: 20% off")
	if err != nil {
		return err
	}
	d.showHelmOutcomes(upgrade)
	if _, err := d.helmTask(ctx, "storefront-3", "--helm-action", taskspec.HelmRollback, "--rollback-to", "1"); err != nil {
		return err
	}
	history, err := d.helmTask(ctx, "storefront-4", "--helm-action", taskspec.HelmHistory)
	if err != nil {
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tSTATUS\tCHART\tDESCRIPTION")
	for _, h := range history.History {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", h.Revision, h.Status, h.Chart, h.Description)
	}
	_ = tw.Flush()
	d.out.block(b.String())
	cm, err := d.cluster.Client.CoreV1().ConfigMaps(appNamespace).Get(ctx, helmRelease+"-settings", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the storefront's ConfigMap: %w", err)
	}
	d.out.say("after the rollback the storefront greets with %q again; its objects carry helm's ownership annotations and the label %s=%s", cm.Data["greeting"], helm.LabelRelease, helmRelease)
	return nil
}

// writeChart copies the embedded chart into the state directory, where
// the CLI packs it.
func (d *demo) writeChart() (string, error) {
	dir := d.path(helmChartDir)
	root := "charts/storefront"
	err := fs.WalkDir(storefrontChart, root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, strings.TrimPrefix(path, root))
		if e.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := storefrontChart.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		return "", fmt.Errorf("write the storefront chart: %w", err)
	}
	return dir, nil
}

// helmTask runs one helm task on the storefront release through the CLI
// and returns its result.
func (d *demo) helmTask(ctx context.Context, id string, extra ...string) (helm.Result, error) {
	task, err := d.cliTask(ctx, id, append([]string{"--kind", taskspec.KindHelm, "--release", helmRelease, "--namespace", appNamespace}, extra...)...)
	if err != nil {
		return helm.Result{}, err
	}
	var res helm.Result
	if err := json.Unmarshal(task.GetResult(), &res); err != nil {
		return helm.Result{}, fmt.Errorf("task %s: the result is not a helm result: %w", id, err)
	}
	d.out.ok("task %s succeeded on attempt %d: %s %s is at revision %d (%s)", id, task.GetAttempt(), res.Action, res.Release, res.Revision, res.Status)
	return res, nil
}

// showHelmOutcomes prints what the release did with each object.
func (d *demo) showHelmOutcomes(res helm.Result) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tKIND\tNAME")
	for _, o := range res.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Outcome, o.Kind, o.Name)
	}
	_ = tw.Flush()
	d.out.block(b.String())
	d.out.say("chart %s from %s; %d objects dry-run server-side after SelfSubjectAccessReviews and an ownership check, before the first write", res.Chart, res.Source, res.DryRun)
}
