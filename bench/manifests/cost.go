package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// cost is what one apply cost the cluster: the API requests it made, by
// verb, and the CPU kube-apiserver and etcd spent meanwhile. On a machine
// with two cores the API server's CPU, not the client's, bounds how fast a
// bundle can be applied, so requests and server CPU explain the wall time.
type cost struct {
	requests map[string]int
	server   time.Duration // kube-apiserver
	etcd     time.Duration
}

// costMeter reads the API server's request counters (its /metrics, as
// cluster administrator) and the CPU time of the kube-apiserver and etcd
// processes this program started (from /proc).
type costMeter struct {
	env                *kubetest.Env
	serverPID, etcdPID int
}

func newCostMeter(env *kubetest.Env) *costMeter {
	m := &costMeter{env: env}
	m.serverPID, m.etcdPID = childPID("kube-apiserver"), childPID("etcd")
	return m
}

// snapshot is the counters at one moment.
type snapshot struct {
	requests     map[string]float64
	server, etcd time.Duration
}

func (m *costMeter) read(ctx context.Context) (snapshot, error) {
	s := snapshot{}
	raw, err := m.env.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return s, fmt.Errorf("read kube-apiserver metrics: %w", err)
	}
	s.requests = requestCounts(raw)
	if m.serverPID > 0 {
		s.server, _ = procstat.CPUTime(m.serverPID)
	}
	if m.etcdPID > 0 {
		s.etcd, _ = procstat.CPUTime(m.etcdPID)
	}
	return s, nil
}

// since returns the cost between an earlier snapshot and now.
func (m *costMeter) since(ctx context.Context, before snapshot) (cost, error) {
	after, err := m.read(ctx)
	if err != nil {
		return cost{}, err
	}
	c := cost{requests: map[string]int{}, server: after.server - before.server, etcd: after.etcd - before.etcd}
	for k, v := range after.requests {
		if d := int(v - before.requests[k] + 0.5); d > 0 {
			c.requests[k] = d
		}
	}
	return c, nil
}

// requestCounts sums apiserver_request_total by verb over resource
// requests (non-resource ones such as /metrics itself are left out),
// telling dry-run requests apart.
func requestCounts(metrics []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || label(labels, "resource") == "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		key := label(labels, "verb")
		if label(labels, "dry_run") != "" {
			key += " dry-run"
		}
		out[key] += v
	}
	return out
}

func label(labels, name string) string {
	_, rest, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// String lists the requests by verb, most first, e.g. "APPLY 1000, GET 1000".
func (c cost) String() string {
	keys := slices.SortedFunc(maps.Keys(c.requests), func(a, b string) int {
		if d := c.requests[b] - c.requests[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	total := 0
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		total += c.requests[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, c.requests[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// childPID finds a direct child of this process by command name; 0 when
// there is none.
func childPID(comm string) int {
	self := os.Getpid()
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range entries {
		b, err := os.ReadFile(path) //nolint:gosec // /proc
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || s[open+1:closing] != comm {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			return pid
		}
	}
	return 0
}
