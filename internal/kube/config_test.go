package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// world is a fake process environment: variables and a service account
// mount that may or may not be there.
type world struct {
	env   map[string]string
	saDir string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{env: map[string]string{}, saDir: filepath.Join(t.TempDir(), "serviceaccount")}
}

// pod makes the world look like a pod with a mounted service account.
func (w *world) pod(t *testing.T, ns string) *world {
	t.Helper()
	w.env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1"
	w.env["KUBERNETES_SERVICE_PORT"] = "443"
	if err := os.MkdirAll(w.saDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"token": "pod-token\n", "ca.crt": "ca", "namespace": ns} {
		if err := os.WriteFile(filepath.Join(w.saDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) opts(o Options) Options {
	o.Getenv = func(k string) string { return w.env[k] }
	o.ServiceAccountDir = w.saDir
	return o
}

// writeKubeconfig writes a kubeconfig whose contexts "a" (current) and "b"
// point at two different servers.
func writeKubeconfig(t *testing.T, name string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	for _, c := range []string{"a", "b"} {
		kc.Clusters[c] = &clientcmdapi.Cluster{Server: "https://" + c + "." + name + ".test:6443"}
		kc.AuthInfos[c] = &clientcmdapi.AuthInfo{Token: "token-" + c}
		kc.Contexts[c] = &clientcmdapi.Context{Cluster: c, AuthInfo: c}
	}
	kc.CurrentContext = "a"
	path := filepath.Join(t.TempDir(), name)
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPicksTheSource(t *testing.T) {
	t.Parallel()
	flagPath := writeKubeconfig(t, "flag")
	outpostPath := writeKubeconfig(t, "outpost")
	stdPath := writeKubeconfig(t, "std")
	tests := []struct {
		name     string
		world    func(t *testing.T) *world
		opts     Options
		wantHost string
		wantSrc  Source
		wantErr  string
		wantNone bool
	}{
		{
			name:     "a --kubeconfig wins over the pod's service account",
			world:    func(t *testing.T) *world { return newWorld(t).pod(t, "agents") },
			opts:     Options{Kubeconfig: flagPath},
			wantHost: "https://a.flag.test:6443", wantSrc: SourceKubeconfig,
		},
		{
			name: "OUTPOST_KUBECONFIG wins over KUBECONFIG",
			world: func(t *testing.T) *world {
				w := newWorld(t)
				w.env["OUTPOST_KUBECONFIG"], w.env["KUBECONFIG"] = outpostPath, stdPath
				return w
			},
			wantHost: "https://a.outpost.test:6443", wantSrc: SourceKubeconfig,
		},
		{
			name: "KUBECONFIG alone is used, as a path list too",
			world: func(t *testing.T) *world {
				w := newWorld(t)
				w.env["KUBECONFIG"] = filepath.Join(t.TempDir(), "missing") + string(os.PathListSeparator) + stdPath
				return w
			},
			wantHost: "https://a.std.test:6443", wantSrc: SourceKubeconfig,
		},
		{
			name:     "--kube-context picks another context of the kubeconfig",
			world:    newWorld,
			opts:     Options{Kubeconfig: flagPath, Context: "b"},
			wantHost: "https://b.flag.test:6443", wantSrc: SourceKubeconfig,
		},
		{
			name:     "in a pod the service account is used",
			world:    func(t *testing.T) *world { return newWorld(t).pod(t, "agents") },
			wantHost: "https://10.96.0.1:443", wantSrc: SourceInCluster,
		},
		{
			name:     "outside a pod without a kubeconfig there is no cluster",
			world:    newWorld,
			wantNone: true,
		},
		{
			name: "service variables without a mounted token are not a pod to use",
			world: func(t *testing.T) *world {
				w := newWorld(t)
				w.env["KUBERNETES_SERVICE_HOST"], w.env["KUBERNETES_SERVICE_PORT"] = "10.96.0.1", "443"
				return w
			},
			wantNone: true,
		},
		{
			name: "a pod without its CA bundle is refused",
			world: func(t *testing.T) *world {
				w := newWorld(t).pod(t, "agents")
				if err := os.Remove(filepath.Join(w.saDir, "ca.crt")); err != nil {
					t.Fatal(err)
				}
				return w
			},
			wantErr: "ca.crt",
		},
		{
			name:    "a missing --kubeconfig is named",
			world:   func(t *testing.T) *world { return newWorld(t).pod(t, "agents") },
			opts:    Options{Kubeconfig: "/nonexistent/kubeconfig"},
			wantErr: "/nonexistent/kubeconfig",
		},
		{
			name:    "a context without a kubeconfig is refused",
			world:   func(t *testing.T) *world { return newWorld(t).pod(t, "agents") },
			opts:    Options{Context: "b"},
			wantErr: "no kubeconfig",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.world(t)
			c, err := Load(w.opts(tt.opts))
			switch {
			case tt.wantNone:
				if !errors.Is(err, ErrNotConfigured) {
					t.Fatalf("Load() = %+v, %v; want ErrNotConfigured", c, err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if c.Config.Host != tt.wantHost || c.Source != tt.wantSrc {
				t.Errorf("Load() = host %s from %s, want %s from %s", c.Config.Host, c.Source, tt.wantHost, tt.wantSrc)
			}
		})
	}
}

func TestLoadInClusterConfig(t *testing.T) {
	t.Parallel()
	w := newWorld(t).pod(t, "agents")
	c, err := Load(w.opts(Options{UserAgent: "outpost-agent/1.2.3", QPS: 7, Burst: 9}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config
	if cfg.BearerToken != "pod-token" || cfg.BearerTokenFile != filepath.Join(w.saDir, "token") {
		t.Errorf("token = %q from %q; want the mounted token, reread from its file", cfg.BearerToken, cfg.BearerTokenFile)
	}
	if cfg.CAFile != filepath.Join(w.saDir, "ca.crt") {
		t.Errorf("CA file = %q, want the mounted ca.crt", cfg.CAFile)
	}
	if !strings.HasPrefix(cfg.UserAgent, "outpost-agent/1.2.3 (") || cfg.QPS != 7 || cfg.Burst != 9 {
		t.Errorf("user agent %q, QPS %v, burst %d", cfg.UserAgent, cfg.QPS, cfg.Burst)
	}
	if c.Namespace != "agents" {
		t.Errorf("namespace = %q, want the pod's", c.Namespace)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c, err := Load(w.opts(Options{Kubeconfig: writeKubeconfig(t, "k")}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.QPS != 0 || c.Config.Burst != 0 || !strings.HasPrefix(c.Config.UserAgent, "outpost-agent (") {
		t.Errorf("QPS %v, burst %d, user agent %q; want rate limits left to each client and the default user agent", c.Config.QPS, c.Config.Burst, c.Config.UserAgent)
	}
}

func TestLoadBurstFollowsQPS(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c, err := Load(w.opts(Options{Kubeconfig: writeKubeconfig(t, "k"), QPS: 50}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.QPS != 50 || c.Config.Burst != 100 {
		t.Errorf("QPS %v, burst %d; want 50 and twice that", c.Config.QPS, c.Config.Burst)
	}
}

func TestLoadNamespace(t *testing.T) {
	t.Parallel()
	kubeconfig := writeKubeconfig(t, "k")
	tests := []struct {
		name    string
		inPod   bool
		env     string
		flag    string
		want    string
		wantErr string
	}{
		{name: "--namespace wins over everything", inPod: true, env: "from-env", flag: "from-flag", want: "from-flag"},
		{name: "OUTPOST_NAMESPACE wins over the pod's namespace", inPod: true, env: "from-env", want: "from-env"},
		{name: "in a pod its own namespace is the default", inPod: true, want: "agents"},
		{name: "outside a pod the default is outpost-system", want: "outpost-system"},
		{name: "an invalid namespace is refused with where it came from", env: "Not_A_Namespace", wantErr: "OUTPOST_NAMESPACE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			if tt.inPod {
				w.pod(t, "agents\n")
			}
			if tt.env != "" {
				w.env["OUTPOST_NAMESPACE"] = tt.env
			}
			c, err := Load(w.opts(Options{Kubeconfig: kubeconfig, Namespace: tt.flag}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Namespace != tt.want {
				t.Errorf("namespace = %q, want %q", c.Namespace, tt.want)
			}
		})
	}
}
