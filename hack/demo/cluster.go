package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/agent"
	"github.com/outposthq/outpost/internal/executor/manifests"
	"github.com/outposthq/outpost/internal/kube/kubetest"
	"github.com/outposthq/outpost/internal/taskspec"
)

// The demo cluster: the agent's own namespace and the one it deploys into.
const (
	agentNamespace = "outpost-system"
	appNamespace   = "shop"
	release        = "shop"
	agentUser      = "outpost-agent"
	identitySecret = agent.DefaultIdentitySecret
	// Files in the state directory.
	adminKubeconfig = "kubeconfig"
	agentKubeconfig = "agent-kubeconfig"
	bundleDir       = "shop-bundle"
	// foreignConfigMap exists before the first deploy, without Outpost's
	// labels.
	foreignConfigMap = "shop-banner"
)

// startCluster starts kube-apiserver and etcd (built from source by
// hack/testbins.sh), creates the namespaces and a least-privilege identity
// for the agent, and writes both kubeconfigs.
func (d *demo) startCluster(ctx context.Context) error {
	d.out.step("Starting a local Kubernetes API server")
	dir, err := kubetest.AssetsDir()
	if err != nil {
		return fmt.Errorf("%w\n    `make demo` builds them; or run ./hack/testbins.sh once (about 10 minutes)", err)
	}
	d.out.say("kube-apiserver and etcd from %s, built from the Go module proxy", d.out.path(dir))
	d.out.say("there is no kubelet: the API server stores what is applied, but no pod ever runs")
	if d.cluster, err = kubetest.Start(); err != nil {
		return err
	}
	for _, ns := range []string{agentNamespace, appNamespace} {
		if err := d.cluster.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	cfg, err := d.cluster.AddAgent(ctx, kubetest.Agent{Name: agentUser, Namespace: agentNamespace, Targets: []string{appNamespace}})
	if err != nil {
		return err
	}
	if err := kubetest.WriteKubeconfig(d.path(agentKubeconfig), cfg); err != nil {
		return err
	}
	if err := kubetest.WriteKubeconfig(d.path(adminKubeconfig), d.cluster.Config); err != nil {
		return err
	}
	d.out.ok("API server at %s; cluster-admin kubeconfig in %s", d.cluster.Config.Host, d.out.path(d.path(adminKubeconfig)))
	d.out.ok("the agent's identity %q may change only namespace %s (and keep its own state in %s): %s",
		agentUser, appNamespace, agentNamespace, d.out.path(d.path(agentKubeconfig)))
	return nil
}

// stopCluster stops kube-apiserver and etcd if they were started.
func (d *demo) stopCluster() {
	if d.cluster == nil {
		return
	}
	if err := d.cluster.Stop(); err != nil {
		d.out.fail("stopping the Kubernetes API server: %v", err)
		return
	}
	d.cluster = nil
	d.out.ok("stopped the Kubernetes API server and etcd")
}

// shopBundle is the sample application, revision by revision: the second
// changes the image and drops the feature-flags ConfigMap.
func shopBundle(revision int) map[string]string {
	image := "ghcr.io/example/shop:1.4.2"
	if revision > 1 {
		image = "ghcr.io/example/shop:1.5.0"
	}
	docs := map[string]string{
		"10-serviceaccount.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: shop\n",
		"20-config.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\ndata:\n  currency: EUR\n  checkout.timeout: 30s\n",
		"30-service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports: [{name: http, port: 80, targetPort: 8080}]
`,
		"40-deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      serviceAccountName: shop
      securityContext: {runAsNonRoot: true}
      containers:
      - name: shop
        image: ` + image + `
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: shop-config}}]
`,
	}
	docs["50-banner.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + foreignConfigMap + "\ndata:\n  text: Welcome\n"
	if revision == 1 {
		docs["25-feature-flags.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-feature-flags\ndata:\n  new-checkout: \"false\"\n"
	}
	return docs
}

// writeBundle writes revision's files into the state directory.
func (d *demo) writeBundle(revision int) (string, error) {
	dir := d.path(fmt.Sprintf("%s-v%d", bundleDir, revision))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	for name, doc := range shopBundle(revision) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			return "", fmt.Errorf("bundle: %w", err)
		}
	}
	return dir, nil
}

// deploy applies both revisions of the shop with manifests tasks, after a
// foreign ConfigMap shows collision defense.
func (d *demo) deploy(ctx context.Context) error {
	d.out.step("Deploying the shop into namespace %s (a manifests task)", appNamespace)
	// The customer's own object, with a name the bundle also uses: the
	// agent must leave it alone.
	banner := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: foreignConfigMap, Namespace: appNamespace},
		Data:       map[string]string{"text": "Maintenance on Sunday (set by the customer's own team)"},
	}
	if _, err := d.cluster.Client.CoreV1().ConfigMaps(appNamespace).Create(ctx, banner, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the customer's ConfigMap: %w", err)
	}
	d.out.say("first, the customer's own team creates ConfigMap %s/%s by hand; the bundle has one of that name too", appNamespace, foreignConfigMap)
	for revision := 1; revision <= 2; revision++ {
		if revision == 2 {
			d.out.step("Revision 2: a new image, and the feature-flags ConfigMap removed from the bundle")
		}
		dir, err := d.writeBundle(revision)
		if err != nil {
			return err
		}
		res, err := d.applyBundle(ctx, fmt.Sprintf("shop-r%d", revision), dir)
		if err != nil {
			return err
		}
		d.showOutcomes(res)
	}
	return d.showCluster(ctx)
}

// applyBundle runs one manifests task through the CLI and returns its
// result.
func (d *demo) applyBundle(ctx context.Context, id, dir string) (manifests.Result, error) {
	task, err := d.cliTask(ctx, id, "--kind", taskspec.KindManifests,
		"--release", release, "--namespace", appNamespace, "--bundle", dir)
	if err != nil {
		return manifests.Result{}, err
	}
	var res manifests.Result
	if err := json.Unmarshal(task.GetResult(), &res); err != nil {
		return manifests.Result{}, fmt.Errorf("task %s: the result is not a manifests result: %w", id, err)
	}
	d.manifestTasks = append(d.manifestTasks, id)
	d.out.ok("task %s succeeded on attempt %d: release %s is at revision %d", id, task.GetAttempt(), res.Release, res.Revision)
	return res, nil
}

// cliTask runs `outpost task run --env <env> --id <id> <args> --wait -o
// json`, showing the command, and returns the finished task.
func (d *demo) cliTask(ctx context.Context, id string, args ...string) (*v1.Task, error) {
	args = append(append([]string{"task", "run", "--env", envName, "--id", id}, args...), "--wait", "-o", "json")
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	tctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	out, err := d.exec(tctx, cliBinary, "", args...)
	d.out.block(out.stderr)
	if err != nil {
		return nil, err
	}
	task := &v1.Task{}
	if err := protojson.Unmarshal([]byte(out.stdout), task); err != nil {
		return nil, fmt.Errorf("read the output of `outpost task run -o json`: %w", err)
	}
	return task, nil
}

// showOutcomes prints what the agent did with each object.
func (d *demo) showOutcomes(res manifests.Result) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tKIND\tNAME\tREASON")
	for _, o := range res.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Outcome, o.Kind, o.Name, o.Reason)
	}
	_ = tw.Flush()
	d.out.block(b.String())
	c := res.Counts
	d.out.say("%d created, %d configured, %d unchanged, %d pruned, %d skipped; every object was checked with SelfSubjectAccessReview and a server-side dry run before the first write",
		c.Created, c.Configured, c.Unchanged, c.Pruned, c.Skipped)
}

// showCluster lists what the release owns, as the API server has it.
func (d *demo) showCluster(ctx context.Context) error {
	d.out.step("What Kubernetes now holds for release %s", release)
	sel := metav1.ListOptions{LabelSelector: "outpost.dev/release=" + release}
	c := d.cluster.Client
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tREVISION\tDETAIL")
	deps, err := c.AppsV1().Deployments(appNamespace).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	for _, o := range deps.Items {
		fmt.Fprintf(tw, "Deployment\t%s\t%s\timage %s\n", o.Name, o.Labels["outpost.dev/revision"], o.Spec.Template.Spec.Containers[0].Image)
	}
	svcs, err := c.CoreV1().Services(appNamespace).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	for _, o := range svcs.Items {
		fmt.Fprintf(tw, "Service\t%s\t%s\tcluster IP %s\n", o.Name, o.Labels["outpost.dev/revision"], o.Spec.ClusterIP)
	}
	cms, err := c.CoreV1().ConfigMaps(appNamespace).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list configmaps: %w", err)
	}
	for _, o := range cms.Items {
		fmt.Fprintf(tw, "ConfigMap\t%s\t%s\t%d keys\n", o.Name, o.Labels["outpost.dev/revision"], len(o.Data))
	}
	sas, err := c.CoreV1().ServiceAccounts(appNamespace).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("list service accounts: %w", err)
	}
	for _, o := range sas.Items {
		fmt.Fprintf(tw, "ServiceAccount\t%s\t%s\t\n", o.Name, o.Labels["outpost.dev/revision"])
	}
	_ = tw.Flush()
	d.out.block(b.String())
	secrets, err := c.CoreV1().Secrets(agentNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	var names []string
	for _, s := range secrets.Items {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return errors.New("the agent keeps nothing in its namespace: no identity, no inventory")
	}
	d.out.ok("the agent's state lives in the cluster, in namespace %s: %s", agentNamespace, strings.Join(names, ", "))
	d.out.say("kill the agent at any moment: a new one carries on from the hub and these Secrets")
	return nil
}
