package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// publishedAgentChart is the chart `outpost token create` tells a newcomer
// to install; the test installs the checked-out one in its place.
const publishedAgentChart = "oci://ghcr.io/outposthq/charts/outpost-agent"

// TestNewcomerInstallsTheAgentWithThePrintedHelmLine does what the README
// tells a newcomer to do: start a hub, log in, create an environment, mint
// a token and paste the helm install it prints. No kubelet runs in the
// test cluster, so the test plays the kubelet for the chart's one pod: it
// starts outpost-agent with the Deployment's args and env, its mounted
// Secret and ConfigMap as files and a token of its ServiceAccount, so the
// agent has exactly the rights the chart grants.
func TestNewcomerInstallsTheAgentWithThePrintedHelmLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, a hub and an agent installed by the chart")
	}
	env := cluster(t)
	h := startHubProc(t)
	config := filepath.Join(t.TempDir(), "outpost.yaml")
	outpost := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runCLI(t, config, stdin, args...)
		if err != nil {
			t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	outpost(h.token, "login", "--hub", h.url(), "--token", "-", "--ca-file", h.caFile)
	outpost("", "env", "create", "prod")
	printed := outpost("", "token", "create", "--env", "prod")

	line := helmLine(t, printed)
	words, err := shellWords(line)
	if err != nil {
		t.Fatalf("the printed helm line does not split into shell words: %v\n%s", err, line)
	}
	cmd := parseHelmInstall(t, words)
	t.Run("the printed line installs the published chart and trusts the login's CA", func(t *testing.T) {
		if cmd.chart != publishedAgentChart {
			t.Errorf("chart %q, want %q", cmd.chart, publishedAgentChart)
		}
		if !slices.Contains(cmd.setFiles, "hub.caBundle="+h.caFile) {
			t.Errorf("--set-file values %q lack hub.caBundle=%s", cmd.setFiles, h.caFile)
		}
	})

	// What the newcomer adds: where the agent may deploy.
	target := env.Namespace(t, "shop")
	cmd.sets = append(cmd.sets, "rbac.targetNamespaces={"+target+"}")
	in := helmInstall(t, env, cmd, agentChartDir(t))

	dep := installedDeployment(t, env, in)
	agentProc := startChartAgent(t, env, dep)

	t.Run("outpost agent list shows the installed agent connected", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		var out string
		for time.Now().Before(deadline) {
			out = outpost("", "agent", "list", "--env", "prod")
			if connectedIn(out, "acme/prod") {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no connected agent of acme/prod after 60s:\n%s\nagent output:\n%s", out, agentProc.out.String())
	})

	t.Run("a manifests task deploys into the target namespace with the chart's RBAC", func(t *testing.T) {
		bundle := writeBundle(t, map[string]string{"hello": `apiVersion: v1
kind: ConfigMap
metadata:
  name: hello
data:
  greeting: hello from outpost
`})
		out := outpost("", "task", "run", "--env", "prod", "--kind", "manifests", "--release", "hello",
			"--namespace", target, "--bundle", bundle, "--wait")
		if !regexp.MustCompile(`(?m)^STATE:\s+succeeded$`).MatchString(out) {
			t.Fatalf("task run --wait did not report success:\n%s\nagent output:\n%s", out, agentProc.out.String())
		}
		cm, err := env.Client.CoreV1().ConfigMaps(target).Get(t.Context(), "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the task succeeded but the ConfigMap is not in %s: %v", target, err)
		}
		if cm.Data["greeting"] != "hello from outpost" || cm.Labels["app.kubernetes.io/managed-by"] != "outpost" {
			t.Errorf("ConfigMap %s/hello: data %v labels %v", target, cm.Data, cm.Labels)
		}
	})
}

// helmLine returns the helm install command in token create's output,
// with its continuation lines.
func helmLine(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "helm install ") {
			continue
		}
		var b strings.Builder
		for _, l := range lines[i:] {
			b.WriteString(l + "\n")
			if !strings.HasSuffix(l, `\`) {
				break
			}
		}
		return b.String()
	}
	t.Fatalf("token create printed no helm install line:\n%s", out)
	return ""
}

// shellWords splits s as a POSIX shell splits a simple command's words:
// blanks separate words, a backslash escapes the next character (a
// backslash-newline joins lines), single quotes keep everything, double
// quotes keep all but \", \\, \$ and \`.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '\\':
			i++
			if i == len(rs) {
				return nil, fmt.Errorf("trailing backslash")
			}
			if rs[i] != '\n' {
				cur.WriteRune(rs[i])
				inWord = true
			}
		case '\'':
			end := slices.Index(rs[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(string(rs[i+1 : i+1+end]))
			i += end + 1
			inWord = true
		case '"':
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				if rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]) {
					i++
				}
				cur.WriteRune(rs[i])
			}
			if i == len(rs) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case ' ', '\t', '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(rs[i])
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWordsSplitsWhatTheCLIQuotes(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"bare words and continued lines", "  helm install a \\\n    --set x=1\n", []string{"helm", "install", "a", "--set", "x=1"}},
		{"a single-quoted word keeps blanks and backslashes", `--set-file 'hub.caBundle=/tmp/my ca\,x.pem'`, []string{"--set-file", `hub.caBundle=/tmp/my ca\,x.pem`}},
		{"an embedded single quote", `'it'\''s'`, []string{"it's"}},
		{"double quotes", `"a \"b\" $c"`, []string{`a "b" $c`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shellWords(tt.in)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("shellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// helmCommand is a parsed `helm install NAME CHART` with the flags token
// create prints.
type helmCommand struct {
	release, chart, namespace string
	createNamespace           bool
	sets, setFiles            []string
}

// parseHelmInstall reads the flags token create prints and fails on any
// other, so that a new flag in the printed line is not silently dropped.
func parseHelmInstall(t *testing.T, words []string) helmCommand {
	t.Helper()
	if len(words) < 4 || words[0] != "helm" || words[1] != "install" {
		t.Fatalf("not a helm install NAME CHART: %q", words)
	}
	cmd := helmCommand{release: words[2], chart: words[3]}
	for i := 4; i < len(words); i++ {
		flag := words[i]
		if flag == "--create-namespace" {
			cmd.createNamespace = true
			continue
		}
		if i+1 == len(words) {
			t.Fatalf("helm flag %s has no value: %q", flag, words)
		}
		i++
		switch flag {
		case "--namespace", "-n":
			cmd.namespace = words[i]
		case "--set":
			cmd.sets = append(cmd.sets, words[i])
		case "--set-file":
			cmd.setFiles = append(cmd.setFiles, words[i])
		default:
			t.Fatalf("the printed helm line has flag %s, which this test does not apply: %q", flag, words)
		}
	}
	if cmd.namespace == "" {
		t.Fatalf("the printed helm line names no --namespace: %q", words)
	}
	return cmd
}

// values merges --set and then --set-file values with helm's own parser,
// in the order the helm CLI does.
func (c helmCommand) values() (map[string]any, error) {
	vals := map[string]any{}
	for _, s := range c.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	readFile := func(rs []rune) (any, error) {
		b, err := os.ReadFile(string(rs))
		return string(b), err
	}
	for _, s := range c.setFiles {
		if err := strvals.ParseIntoFile(s, vals, readFile); err != nil {
			return nil, fmt.Errorf("--set-file %s: %w", s, err)
		}
	}
	return vals, nil
}

// agentChartDir is deploy/charts/outpost-agent of this checkout.
func agentChartDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "charts", "outpost-agent")
}

// helmInstall runs cmd through the Helm 4 SDK as `helm install` would, with
// chartPath in place of cmd.chart, and uninstalls the release when the
// test ends.
func helmInstall(t *testing.T, env *kubetest.Env, cmd helmCommand, chartPath string) *release.Release {
	t.Helper()
	vals, err := cmd.values()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(chartPath)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, env.Config); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &cmd.namespace
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, cmd.namespace, "secret"); err != nil {
		t.Fatal(err)
	}
	ins := action.NewInstall(cfg)
	ins.ReleaseName = cmd.release
	ins.Namespace = cmd.namespace
	ins.CreateNamespace = cmd.createNamespace
	// No kubelet runs in the test cluster: nothing would become ready.
	ins.WaitStrategy = kube.HookOnlyStrategy
	ins.Timeout = time.Minute
	out, err := ins.RunWithContext(t.Context(), ch, vals)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rel, ok := out.(*release.Release)
	if !ok || rel.Info == nil || rel.Info.Status != "deployed" {
		t.Fatalf("release %+v is not deployed", out)
	}
	t.Cleanup(func() {
		un := action.NewUninstall(cfg)
		un.WaitStrategy = kube.HookOnlyStrategy
		if _, err := un.Run(cmd.release); err != nil {
			t.Errorf("helm uninstall: %v", err)
		}
		// The agent's identity and inventories are not the chart's; the
		// namespace only terminates, without a namespace controller.
		err := env.Client.CoreV1().Namespaces().Delete(context.Background(), cmd.namespace, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete namespace %s: %v", cmd.namespace, err)
		}
	})
	return rel
}

// installedDeployment is the one Deployment of rel.
func installedDeployment(t *testing.T, env *kubetest.Env, rel *release.Release) *appsv1.Deployment {
	t.Helper()
	list, err := env.Client.AppsV1().Deployments(rel.Namespace).List(t.Context(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + rel.Name,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("release %s has %d Deployments, want 1", rel.Name, len(list.Items))
	}
	return &list.Items[0]
}

// startChartAgent starts outpost-agent as the kubelet would start dep's
// pod: its args and env, its Secret, ConfigMap and emptyDir volumes as
// directories (paths in args and env rewritten to them), the downward API
// resolved, and a kubeconfig carrying a token of its ServiceAccount.
func startChartAgent(t *testing.T, env *kubetest.Env, dep *appsv1.Deployment) *proc {
	t.Helper()
	ns := dep.Namespace
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the agent pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Command) != 0 {
		t.Fatalf("the agent container overrides the image's command: %q", c.Command)
	}
	podName := dep.Name + "-7d9c5b8f6-x2k4p"

	mounts := map[string]string{}
	root := t.TempDir()
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("volume mount %s has no volume", m.Name)
		}
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mounts[m.MountPath] = dir
		v := pod.Volumes[i]
		switch {
		case v.EmptyDir != nil:
		case v.Secret != nil:
			s, err := env.Client.CoreV1().Secrets(ns).Get(t.Context(), v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("Secret of volume %s: %v", v.Name, err)
			}
			writeVolume(t, dir, s.Data, v.Secret.Items)
		case v.ConfigMap != nil:
			cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("ConfigMap of volume %s: %v", v.Name, err)
			}
			data := map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			writeVolume(t, dir, data, v.ConfigMap.Items)
		default:
			t.Fatalf("volume %s is of a kind this test does not mount", v.Name)
		}
	}
	rewrite := func(s string) string {
		for mp, dir := range mounts {
			if s == mp || strings.HasPrefix(s, mp+"/") {
				return dir + strings.TrimPrefix(s, mp)
			}
		}
		return s
	}

	args := make([]string, 0, len(c.Args)+1)
	for _, a := range c.Args {
		if flag, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(flag, "--") {
			a = flag + "=" + rewrite(val)
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig", serviceAccountKubeconfig(t, env, ns, pod.ServiceAccountName))

	environ := append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=")
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+rewrite(e.Value))
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			environ = append(environ, e.Name+"="+podName)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			environ = append(environ, e.Name+"="+ns)
		default:
			t.Fatalf("env %s comes from a source this test does not resolve: %+v", e.Name, e.ValueFrom)
		}
	}

	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binaries(t), "outpost-agent"), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = environ
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("outpost-agent %s output:\n%s", strings.Join(args, " "), out.String())
		}
	})
	return p
}

// writeVolume writes data into dir as the kubelet projects a Secret or
// ConfigMap: the listed items at their paths, or every key.
func writeVolume(t *testing.T, dir string, data map[string][]byte, items []corev1.KeyToPath) {
	t.Helper()
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			t.Fatalf("volume key %s is missing", it.Key)
		}
		if err := os.WriteFile(filepath.Join(dir, it.Path), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig of the test cluster with a
// TokenRequest token of ServiceAccount ns/name, as its pod would mount.
func serviceAccountKubeconfig(t *testing.T, env *kubetest.Env, ns, name string) string {
	t.Helper()
	tok, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of ServiceAccount %s/%s: %v", ns, name, err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := &rest.Config{Host: env.Config.Host, TLSClientConfig: rest.TLSClientConfig{CAData: env.Config.CAData}, BearerToken: tok.Status.Token}
	if err := kubetest.WriteKubeconfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectedIn reports whether agent list's table has a connected agent of
// environment env.
func connectedIn(table, env string) bool {
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if slices.Contains(f, env) && slices.Contains(f, "connected") {
			return true
		}
	}
	return false
}
