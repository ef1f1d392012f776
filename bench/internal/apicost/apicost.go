// Package apicost measures what work cost a kube-apiserver the benchmark
// started: the API requests made, by verb, and the CPU time kube-apiserver
// and etcd spent meanwhile. On a machine with two cores the API server's
// CPU, not the client's, often bounds how fast a client can go, so
// requests and server CPU explain wall times.
package apicost

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"

	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// Cost is what some work cost the cluster: the API requests made, by verb
// ("APPLY", "GET", "APPLY dry-run", …), and the CPU kube-apiserver and etcd
// spent meanwhile.
type Cost struct {
	Requests map[string]int
	// ByResource counts the same requests by verb and resource, such as
	// "POST selfsubjectaccessreviews" or "APPLY dry-run configmaps".
	ByResource map[string]int
	Server     time.Duration // kube-apiserver
	Etcd       time.Duration
}

// Meter reads the API server's request counters (its /metrics, as
// cluster administrator) and the CPU time of the kube-apiserver and etcd
// processes this program started (from /proc). The counters cover every
// client of the API server, the benchmark's own bookkeeping included.
type Meter struct {
	env                *kubetest.Env
	serverPID, etcdPID int
}

// NewMeter returns a Meter for env, which this process started.
func NewMeter(env *kubetest.Env) *Meter {
	m := &Meter{env: env}
	m.serverPID, m.etcdPID = procstat.ChildPID("kube-apiserver"), procstat.ChildPID("etcd")
	return m
}

// Snapshot is the counters at one moment.
type Snapshot struct {
	requests     map[requestKey]float64
	server, etcd time.Duration
}

// Read takes a Snapshot now.
func (m *Meter) Read(ctx context.Context) (Snapshot, error) {
	s := Snapshot{}
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

// Since returns the Cost between an earlier Snapshot and now.
func (m *Meter) Since(ctx context.Context, before Snapshot) (Cost, error) {
	after, err := m.Read(ctx)
	if err != nil {
		return Cost{}, err
	}
	c := Cost{Requests: map[string]int{}, ByResource: map[string]int{}, Server: after.server - before.server, Etcd: after.etcd - before.etcd}
	for k, v := range after.requests {
		if d := int(v - before.requests[k] + 0.5); d > 0 {
			c.Requests[k.verb] += d
			c.ByResource[k.verb+" "+k.resource] += d
		}
	}
	return c, nil
}

// requestKey is what requests are counted by; verb ends in " dry-run"
// for dry-run requests.
type requestKey struct{ verb, resource string }

// requestCounts sums apiserver_request_total by verb and resource over
// resource requests (non-resource ones such as /metrics itself are left
// out), telling dry-run requests apart.
func requestCounts(metrics []byte) map[requestKey]float64 {
	out := map[requestKey]float64{}
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
		key := requestKey{verb: label(labels, "verb"), resource: label(labels, "resource")}
		if sub := label(labels, "subresource"); sub != "" {
			key.resource += "/" + sub
		}
		if label(labels, "dry_run") != "" {
			key.verb += " dry-run"
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
func (c Cost) String() string {
	keys := slices.SortedFunc(maps.Keys(c.Requests), func(a, b string) int {
		if d := c.Requests[b] - c.Requests[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	total := 0
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		total += c.Requests[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, c.Requests[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// Total returns the number of requests.
func (c Cost) Total() int {
	n := 0
	for _, v := range c.Requests {
		n += v
	}
	return n
}

// Per lists the requests per unit (a release, a module): the total and
// each verb and resource, most first, leaving out those under 0.05 per
// unit, e.g. "30.2 (GET secrets 9.0, PUT leases 5.1)"; "—" without units.
func (c Cost) Per(units int) string {
	if units == 0 {
		return "—"
	}
	keys := slices.SortedFunc(maps.Keys(c.ByResource), func(a, b string) int {
		if d := c.ByResource[b] - c.ByResource[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := float64(c.ByResource[k]) / float64(units)
		if v < 0.05 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", k, v))
	}
	return fmt.Sprintf("%.1f (%s)", float64(c.Total())/float64(units), strings.Join(parts, ", "))
}
