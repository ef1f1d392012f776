package hub

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the hub's Prometheus series.
type metrics struct {
	connectedAgents prometheus.GaugeFunc
	queueDepth      *prometheus.GaugeVec
	claimed         prometheus.Counter
	completed       *prometheus.CounterVec
	enqueued        prometheus.Counter
	dispatchLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, n *notifier) (*metrics, error) {
	m := &metrics{
		connectedAgents: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_connected_agents",
			Help: "Agents holding a Watch or Poll open or seen in the last 45 seconds, on this replica.",
		}, func() float64 { return float64(n.connectedCount()) }),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outpost_queue_depth",
			Help: "Unfinished tasks by state, across the store.",
		}, []string{"state"}),
		claimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_tasks_claimed_total",
			Help: "Task attempts leased to agents by this replica.",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_tasks_completed_total",
			Help: "Attempt reports recorded by this replica, by outcome.",
		}, []string{"outcome"}),
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_tasks_enqueued_total",
			Help: "Tasks created through this replica.",
		}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "outpost_dispatch_latency_seconds",
			Help:    "Time from a task becoming runnable to its claim by an agent.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	for _, c := range []prometheus.Collector{m.connectedAgents, m.queueDepth, m.claimed, m.completed, m.enqueued, m.dispatchLatency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
