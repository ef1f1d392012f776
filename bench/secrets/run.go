package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/outposthq/outpost/bench/internal/outpostproc"
	"github.com/outposthq/outpost/bench/internal/procstat"
	"github.com/outposthq/outpost/bench/internal/report"
	"github.com/outposthq/outpost/bench/internal/stats"
	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/cli"
	"github.com/outposthq/outpost/internal/executor/secret"
	"github.com/outposthq/outpost/internal/kube"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

const (
	environment  = "prod"
	appNamespace = "app"
	secretName   = "bench-secret"
	workloadName = "web"
	// stepTimeout bounds one update from the command to the rollout.
	stepTimeout = 30 * time.Second
)

// results is everything one invocation measured.
type results struct {
	serverVersion string
	agentVersion  string
	// set, secret and rollout are, per update, the time from the start
	// of the command to each stage.
	set, secret, rollout stats.Sample
	busy                 float64 // machine CPU busy share over the measured updates
	hubCPU, agentCPU     time.Duration
}

func run(ctx context.Context, cfg config, args []string) error {
	hubBin, agentBin := filepath.Join(cfg.binDir, "outpost-hub"), filepath.Join(cfg.binDir, "outpost-agent")
	for _, b := range []string{hubBin, agentBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s is not built: run make build (or pass -bin-dir)", b)
		}
	}
	tmp, err := os.MkdirTemp("", "outpost-bench-secrets-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd …")
	env, err := kubetest.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "warning:", err)
		}
	}()
	res := &results{}
	if v, err := env.Client.Discovery().ServerVersion(); err == nil {
		res.serverVersion = v.GitVersion
	}
	for _, ns := range []string{kube.DefaultNamespace, appNamespace} {
		if err := env.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := kubetest.WriteKubeconfig(kubeconfig, env.Config); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "starting outpost-hub and outpost-agent …")
	hub, err := outpostproc.StartHub(ctx, outpostproc.HubOptions{Bin: hubBin, Dir: tmp})
	if err != nil {
		return err
	}
	defer func() { _ = hub.Stop() }()
	agent, err := outpostproc.StartAgent(ctx, outpostproc.AgentOptions{Bin: agentBin, Dir: tmp, Hub: hub, Environment: environment, Kubeconfig: kubeconfig})
	if err != nil {
		return err
	}
	defer func() { _ = agent.Stop() }()
	res.agentVersion = agent.Version
	if err := waitKeys(ctx, hub, agent); err != nil {
		return err
	}
	if err := createWorkload(ctx, env); err != nil {
		return err
	}

	secrets := watchSecretChecksum(ctx, env)
	rollouts := watchTemplateChecksum(ctx, env)
	cliSet := setter{hub: hub, configPath: filepath.Join(tmp, "outpost.yaml")}
	lastRollout := ""
	update := func(i int) (set, sec, roll time.Duration, err error) {
		values := randomValues(cfg)
		want := secret.Checksum(values)
		start := time.Now()
		if err := cliSet.run(ctx, values); err != nil {
			return 0, 0, 0, fmt.Errorf("update %d: %w", i, err)
		}
		set = time.Since(start)
		deadline := time.After(stepTimeout)
		var secAt, rollAt time.Time
		for secAt.IsZero() || rollAt.IsZero() {
			select {
			case o := <-secrets:
				if o.value == want && secAt.IsZero() {
					secAt = o.at
				}
			case o := <-rollouts:
				if o.value != lastRollout && o.value != "" && rollAt.IsZero() {
					rollAt, lastRollout = o.at, o.value
				}
			case <-deadline:
				return 0, 0, 0, fmt.Errorf("update %d: the Secret (seen: %v) or the rollout (seen: %v) did not follow within %v; agent log: %s",
					i, !secAt.IsZero(), !rollAt.IsZero(), stepTimeout, procstat.Tail(agent.LogPath, 10))
			case <-ctx.Done():
				return 0, 0, 0, ctx.Err()
			}
		}
		return set, secAt.Sub(start), rollAt.Sub(start), nil
	}

	fmt.Fprintf(os.Stderr, "%d warm-up and %d measured updates …\n", cfg.warmup, cfg.updates)
	for i := range cfg.warmup {
		if _, _, _, err := update(i); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	hubCPU0, _ := procstat.CPUTime(hub.PID())
	agentCPU0, _ := procstat.CPUTime(agent.PID())
	meter := procstat.StartBusy()
	for i := range cfg.updates {
		s, sec, roll, err := update(cfg.warmup + i)
		if err != nil {
			return err
		}
		res.set, res.secret, res.rollout = append(res.set, s), append(res.secret, sec), append(res.rollout, roll)
	}
	res.busy = meter.Share()
	if c, err := procstat.CPUTime(hub.PID()); err == nil {
		res.hubCPU = c - hubCPU0
	}
	if c, err := procstat.CPUTime(agent.PID()); err == nil {
		res.agentCPU = c - agentCPU0
	}

	tables := render(cfg, res)
	return report.Publish(cfg.results, tables, func() error { return appendResults(ctx, cfg, args, tables) })
}

// waitKeys waits until the hub holds a key of the environment, which the
// agent publishes once it has created it.
func waitKeys(ctx context.Context, hub *outpostproc.Hub, agent *outpostproc.Agent) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := hub.Operator.GetEnvironmentKeys(ctx, connect.NewRequest(&outpostv1.GetEnvironmentKeysRequest{Environment: environment}))
		if err == nil && len(res.Msg.GetKeys()) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the agent did not publish the environment key within 30s: %s", procstat.Tail(agent.LogPath, 15))
}

// createWorkload creates the Deployment that restarts on the secret.
func createWorkload(ctx context.Context, env *kubetest.Env) error {
	labels := map[string]string{"app": workloadName}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: workloadName, Namespace: appNamespace,
			Annotations: map[string]string{secret.AnnotationRestartOn: secretName}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.example/web:1.0",
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secretName}}}},
				}}},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(appNamespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	return nil
}

// randomValues returns cfg.keys fresh values; hex, so they pass as
// KEY=VALUE arguments.
func randomValues(cfg config) map[string][]byte {
	out := make(map[string][]byte, cfg.keys)
	for k := range cfg.keys {
		b := make([]byte, (cfg.valueBytes+1)/2)
		_, _ = rand.Read(b)
		out["key-"+strconv.Itoa(k)] = []byte(hex.EncodeToString(b)[:cfg.valueBytes])
	}
	return out
}

// setter runs `outpost secret set` in this process as cmd/outpost does,
// logged in through OUTPOST_HUB and OUTPOST_TOKEN.
type setter struct {
	hub        *outpostproc.Hub
	configPath string
}

func (s setter) run(ctx context.Context, values map[string][]byte) error {
	args := []string{"--ca-file", s.hub.CAFile, "secret", "set", environment, secretName, "--namespace", appNamespace}
	for k, v := range values {
		args = append(args, k+"="+string(v))
	}
	var stderr bytes.Buffer
	cmd := cli.NewRootCommand(cli.Options{
		Stdout:     io.Discard,
		Stderr:     &stderr,
		Stdin:      strings.NewReader(""),
		ConfigPath: s.configPath,
		Getenv: func(k string) string {
			switch k {
			case "OUTPOST_HUB":
				return s.hub.URL
			case "OUTPOST_TOKEN":
				return s.hub.Token
			}
			return ""
		},
	})
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		return fmt.Errorf("outpost secret set: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
